#!/usr/bin/env bash
# `npm test`: every test. Native Rust tests (wire types, validation, tokens, queue rules,
# routing, the bridge and its agents), a short run of every fuzz target, the Modal app's tests,
# a deploy dry run of the built Worker, then the integration tests against it in local workerd,
# with the real bridge and Chromium (and a chaos run that kills workerd mid-stream).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
bash scripts/setup.sh --browser --pytest --opencode
source scripts/env.sh

echo "== cargo test (native)"
cargo test --workspace --quiet 2>&1

echo "== fuzz targets, a few seconds each (fuzz/: cargo-fuzz, libFuzzer; npm run fuzz runs them longer)"
FUZZ_PROFILE=dev FUZZ_SECONDS=3 bash scripts/fuzz.sh

echo "== the bridge binary the integration tests run"
cargo build --quiet -p bridge

echo "== pytest (the Modal app, against fakes of the modal SDK)"
python3 -m pytest modal/tests -q

echo "== unit tests of the web page (its state, sentences and Markdown; no browser)"
node --test tests/unit/*.test.mjs

echo "== build the release Worker once"
bash scripts/build.sh

echo "== wrangler deploy --dry-run: the built Worker bundles with wrangler.toml as a deploy takes them (offline)"
dry_run=$(mktemp -d)
wrangler deploy --dry-run --outdir "$dry_run/bundle" >"$dry_run/log" 2>&1 || { cat "$dry_run/log" >&2; exit 1; }
rm -rf "$dry_run"

echo "== integration tests (wrangler dev / workerd)"
node --test --test-concurrency=2 --test-timeout=300000 tests/*.test.mjs

echo "npm test took $(( $(date +%s) - started )) s"
