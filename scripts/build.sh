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
touch build/index.js
