#!/usr/bin/env bash
# `npm run soak -- --minutes N`: builds the release Worker and the load generator, then runs the
# soak (bench/soak.mjs): 64 participants in one session, 50 prompts/s, workerd's memory sampled
# every 10 s and printed as a table. See bench/README.md (Soak).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
if [ -z "${COORDINATOR_DIR:-}" ]; then
  echo "soak: building the release Worker" >&2
  bash scripts/build.sh
fi
echo "soak: building the load generator (bench/loadgen)" >&2
cargo build --release --quiet --manifest-path bench/loadgen/Cargo.toml
node bench/soak.mjs "$@"
