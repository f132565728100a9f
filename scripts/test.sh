#!/usr/bin/env bash
# `npm test`: every test. Native Rust tests (wire types, validation, tokens, queue rules,
# routing), then the integration tests against the built wasm Worker in local workerd.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
bash scripts/setup.sh
source scripts/env.sh

echo "== cargo test (native)"
cargo test --workspace --quiet 2>&1

echo "== build the release Worker once"
bash scripts/build.sh

echo "== integration tests (wrangler dev / workerd)"
node --test --test-concurrency=2 --test-timeout=300000 tests/*.test.mjs

echo "npm test took $(( $(date +%s) - started )) s"
