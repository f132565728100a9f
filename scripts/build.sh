#!/usr/bin/env bash
# Builds the release Worker (wasm + JS shim) into build/, unless nothing changed since the last build.
# `--force` rebuilds anyway.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
if [ "${1:-}" != "--force" ] && [ -f build/index.js ] \
  && [ -z "$(find src crates/protocol Cargo.toml Cargo.lock -newer build/index.js -print -quit)" ]; then
  exit 0
fi
echo "build: compiling the Worker (release wasm)" >&2
worker-build --release
# worker-build keeps the wasm names section for stack traces; panics are bugs we do not ship
# on purpose, so drop it (about 40 KB gzipped). The features are the ones worker-build enables.
features=(mutable-globals sign-ext nontrapping-float-to-int bulk-memory multivalue reference-types exception-handling)
wasm-opt build/index_bg.wasm -o build/index_bg.wasm --strip-debug --strip-producers "${features[@]/#/--enable-}"
touch build/index.js
