#!/usr/bin/env bash
# `npm run fuzz`: builds the fuzz targets in fuzz/ with cargo-fuzz (libFuzzer, coverage-guided)
# and runs each for FUZZ_SECONDS (60), printing a table; fails on any crash and keeps the input
# under fuzz/artifacts/<target>/. See fuzz/README.md.
#   npm run fuzz                       every target, 60 s each, optimised build
#   npm run fuzz -- client_frame route  only these
#   FUZZ_SECONDS=600 npm run fuzz       ten minutes each
#   FUZZ_PROFILE=dev                    an unoptimised build (quicker to build; what npm test runs)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --fuzz
source scripts/env.sh
profile=${FUZZ_PROFILE:-release}
# Only a stable toolchain is here: RUSTC_BOOTSTRAP lets cargo-fuzz pass its -Z flags, and with
# no sanitizer (-s none) no sanitizer runtime is needed; a Rust panic is the crash libFuzzer sees.
build=(cargo fuzz build --fuzz-dir fuzz -s none)
case "$profile" in
  release) build+=(--release --debug-assertions) ;;
  dev) build+=(--dev) ;;
  *) echo "fuzz: FUZZ_PROFILE is release or dev, not $profile" >&2; exit 2 ;;
esac
echo "fuzz: building the targets ($profile)" >&2
started=$(date +%s)
RUSTC_BOOTSTRAP=1 "${build[@]}" 2>&1 | { grep -v -e '^ *Compiling' -e '^ *Finished' || true; }
echo "fuzz: built in $(( $(date +%s) - started )) s" >&2
FUZZ_PROFILE=$profile node fuzz/run.mjs "$@"
