#!/usr/bin/env bash
# `npm run chaos -- --cycles N`: builds the release Worker and the bridge, then runs
# scripts/chaos.mjs (workerd killed with SIGKILL N times while the dev agent streams; the log
# checked after each, lost answer text included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
bash scripts/build.sh
cargo build --quiet -p bridge
node scripts/chaos.mjs "$@"
