#!/usr/bin/env bash
# Installs what building, running and testing the coordinator need, and skips what is there:
# the wasm target, worker-build and the wasm-bindgen CLI (pinned), and the npm packages
# (wrangler, a project-local Node 22, binaryen's wasm-opt).
# Usage: scripts/setup.sh [--browser] [--pytest] [--fuzz] [--opencode]
#   --browser  also installs Chromium for the browser tests (Debian's package)
#   --pytest   also installs modal/requirements-test.txt (pytest, FastAPI, jsonschema…) for the Modal app's tests
#   --opencode also installs opencode-ai 1.18.33 and the agent's MCP servers (not saved in package.json) for the OpenCode tests
#   --fuzz     also installs cargo-fuzz (pinned) for the fuzz targets in fuzz/
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "setup: $*" >&2; }
export PATH="$HOME/.cargo/bin:$PATH"

if ! command -v cargo >/dev/null; then
  say "cargo is missing: install Rust (https://rustup.rs) and run this again"
  exit 1
fi

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

# Versions come from Cargo.lock: worker-build must match the `worker` crate, and the
# wasm-bindgen CLI must equal the `wasm-bindgen` crate to the patch.
locked_version() { awk -v name="$1" '$0 == "name = \"" name "\"" { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock; }
WORKER_BUILD_VERSION=$(locked_version worker)
bindgen_version=$(locked_version wasm-bindgen)
if [ -z "$WORKER_BUILD_VERSION" ] || [ -z "$bindgen_version" ]; then
  say "cannot read the worker and wasm-bindgen versions from Cargo.lock"
  exit 1
fi

if [ "$(worker-build --version 2>/dev/null | awk '{print $NF}')" != "$WORKER_BUILD_VERSION" ]; then
  say "installing worker-build $WORKER_BUILD_VERSION (a few minutes, once)"
  cargo install --locked --quiet worker-build --version "$WORKER_BUILD_VERSION" \
    || cargo install --quiet worker-build --version "$WORKER_BUILD_VERSION"
fi

if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $NF}')" != "$bindgen_version" ]; then
  say "installing wasm-bindgen-cli $bindgen_version (a few minutes, once)"
  # --locked first; when a pinned dependency of the CLI is missing from the registry, let cargo resolve.
  cargo install --locked --quiet wasm-bindgen-cli --version "$bindgen_version" \
    || cargo install --quiet wasm-bindgen-cli --version "$bindgen_version"
fi

# npm packages: reinstall only when package.json or the lockfile changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package.json -nt node_modules/.package-lock.json ] \
  || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages"
  npm install --no-audit --no-fund --loglevel=error 2>&1 | grep -v -e EBADENGINE -e 'Unknown user config' -e '^npm warn' >&2 || true
  if [ ! -x node_modules/.bin/wrangler ]; then
    say "npm install failed"
    exit 1
  fi
  touch node_modules/.package-lock.json
fi

want_browser=false want_pytest=false want_fuzz=false want_opencode=false
for arg in "$@"; do
  case "$arg" in
    --browser) want_browser=true ;;
    --pytest) want_pytest=true ;;
    --fuzz) want_fuzz=true ;;
    --opencode) want_opencode=true ;;
    *) say "unknown option $arg"; exit 2 ;;
  esac
done

if $want_browser && [ ! -x /usr/bin/chromium ]; then
  say "installing Chromium for the browser tests"
  export DEBIAN_FRONTEND=noninteractive
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq >/dev/null && $sudo apt-get install -y -qq chromium >/dev/null
fi

if $want_pytest && ! python3 -c "import pytest, fastapi, jsonschema, regress, httpx2" >/dev/null 2>&1; then
  say "installing modal/requirements-test.txt for the Modal app's tests"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -r modal/requirements-test.txt
fi

# With the MCP servers of the agent's configuration (the versions the Modal image installs),
# in one install: npm drops unsaved packages it is not told about again.
if $want_opencode && { [ ! -x node_modules/.bin/opencode ] || [ ! -x node_modules/.bin/mcp-server-memory ]; }; then
  say "installing opencode-ai 1.18.33 and the MCP servers for the OpenCode tests"
  # shellcheck disable=SC2046
  npm install --no-save --no-audit --no-fund --loglevel=error opencode-ai@1.18.33 \
    $(grep -v '^#' crates/bridge/agent-config/mcp-packages.txt) >&2 \
    || say "opencode-ai could not be installed; the OpenCode tests will say so and skip"
fi

# cargo-fuzz drives libFuzzer (built from source by the libfuzzer-sys crate, no download).
CARGO_FUZZ_VERSION=0.13.2
if $want_fuzz && [ "$(cargo fuzz --version 2>/dev/null | awk '{print $NF}')" != "$CARGO_FUZZ_VERSION" ]; then
  say "installing cargo-fuzz $CARGO_FUZZ_VERSION (a few minutes, once)"
  cargo install --locked --quiet cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi
