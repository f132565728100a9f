#!/usr/bin/env bash
# `npm run bench`: builds the release Worker and the load generator, then runs the benchmark
# (bench/run.mjs): the coordinator and a minimal JavaScript floor side by side in local
# workerd, driven by the Rust load generator. Prints the table; writes bench/results/.
# `npm run bench -- --profile` profiles the hot paths instead (bench/profile.mjs);
# `npm run bench -- --metrics` (or BENCH_ONLY=metrics) times GET /v1/metrics over 100,000
# seeded prompts (bench/metrics.mjs) and needs no load generator.
# See bench/README.md. BENCH_RUNS, BENCH_N, BENCH_ONLY and BENCH_REPLAY narrow a run down.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
bash scripts/setup.sh
source scripts/env.sh

if [ -z "${COORDINATOR_DIR:-}" ]; then
  echo "bench: building the release Worker" >&2
  bash scripts/build.sh
else
  echo "bench: using the Worker built in $COORDINATOR_DIR" >&2
fi

if [ "${1:-}" = "--metrics" ] || [ "${BENCH_ONLY:-}" = "metrics" ]; then
  node --disable-warning=ExperimentalWarning bench/metrics.mjs
  echo "bench: npm run bench took $(( $(date +%s) - started )) s" >&2
  exit 0
fi

echo "bench: building the load generator (bench/loadgen)" >&2
cargo build --release --quiet --manifest-path bench/loadgen/Cargo.toml

if [ "${1:-}" = "--profile" ]; then
  node bench/profile.mjs
else
  node bench/run.mjs
fi
echo "bench: npm run bench took $(( $(date +%s) - started )) s" >&2
