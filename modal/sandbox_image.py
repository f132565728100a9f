"""The sandbox base image, and a script that builds and publishes it as a named Modal Image.

    python modal/sandbox_image.py                         # build the bridge from this clone's source
    python modal/sandbox_image.py --bridge-binary PATH    # or copy a prebuilt Linux x86-64 binary

The image: ``node:22-bookworm`` (git, curl, a C toolchain, Python 3) + ``opencode-ai@1.18.33`` + ripgrep
+ the MCP servers the agent's ``opencode.json`` names (memory, filesystem, playwright with Debian's
Chromium; see ``crates/bridge/agent-config/``) + the ``bridge`` binary + the ``sandbox-entry`` script.
The bridge writes the agent's configuration itself, from the same templates the local provider uses. By default the bridge is compiled inside the
image build from the repository's Cargo workspace (``Cargo.toml``, ``Cargo.lock``, ``src/``, ``crates/``)
with a throw-away rustup toolchain that is deleted in the same layer, so nothing but a clone of the
repository and ``pip install modal`` is needed locally.

Why a published, named image rather than an inline definition in ``app.py``: the definition reads
local files (the Rust sources), which do not exist inside the deployed web function, where sandboxes
are created. Modal's named images (`Image.publish` / `Image.from_name`) are the documented way to
"build in a script, reference by name in sandbox code"; re-running this script updates the name and
new sandboxes pick the new image up, running ones keep theirs.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent

OPENCODE_VERSION = "1.18.33"
# The npm packages of the MCP servers crates/bridge/agent-config/opencode.json runs, pinned in
# one list that `AGENT=opencode npm run dev` installs too.
MCP_PACKAGES = tuple(
    line.strip()
    for line in (REPO_ROOT / "crates/bridge/agent-config/mcp-packages.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
)
CHROMIUM_PATH = "/usr/bin/chromium"
BASE_REGISTRY_IMAGE = "node:22-bookworm"
DEFAULT_IMAGE_NAME = "session-coordinator-sandbox"
BUILDER_APP_NAME = "session-coordinator-image-builds"
SOURCE_DIR = "/opt/coordinator-src"
# Whom the bridge runs the agent as, and the bridge's own folder (its journal, its repository for
# pushes), which that user may pass through but not read.
AGENT_USER = "agent"
BRIDGE_STATE_DIR = "/var/lib/bridge"

# One RUN line: a minimal toolchain in /tmp, build, install, and delete the toolchain and the build tree,
# so the image layer only keeps /usr/local/bin/bridge.
CARGO_BUILD = " && ".join(
    [
        "set -eux",
        "export RUSTUP_HOME=/tmp/rustup CARGO_HOME=/tmp/cargo",
        "curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs"
        " | sh -s -- -y --profile minimal --default-toolchain stable --no-modify-path",
        f"cd {SOURCE_DIR}",
        "/tmp/cargo/bin/cargo build --release --locked -p bridge",
        "install -m 0755 target/release/bridge /usr/local/bin/bridge",
        "rm -rf /tmp/rustup /tmp/cargo target",
    ]
)


def base_image(modal, *, bridge_binary: str | os.PathLike | None = None, repo_root: Path = REPO_ROOT):
    """The sandbox base image definition (needs local files: build it here, not in the web function)."""
    image = (
        modal.Image.from_registry(BASE_REGISTRY_IMAGE)
        .entrypoint([])  # the node image's docker-entrypoint.sh is not wanted in front of our command
        .apt_install("ripgrep", "jq", "chromium")
        .run_commands(
            f"npm install -g --no-audit --no-fund opencode-ai@{OPENCODE_VERSION}",
            "opencode --version",
            f"npm install -g --no-audit --no-fund {' '.join(MCP_PACKAGES)}",
            "command -v mcp-server-memory mcp-server-filesystem playwright-mcp",
            f"{CHROMIUM_PATH} --version",
        )
    )
    if bridge_binary:
        image = image.add_local_file(Path(bridge_binary), "/usr/local/bin/bridge", copy=True)
        image = image.run_commands("chmod 0755 /usr/local/bin/bridge")
    else:
        image = (
            image.add_local_file(repo_root / "Cargo.toml", f"{SOURCE_DIR}/Cargo.toml", copy=True)
            .add_local_file(repo_root / "Cargo.lock", f"{SOURCE_DIR}/Cargo.lock", copy=True)
            .add_local_dir(repo_root / "src", f"{SOURCE_DIR}/src", copy=True, ignore=["**/target/**"])
            .add_local_dir(repo_root / "crates", f"{SOURCE_DIR}/crates", copy=True, ignore=["**/target/**"])
            .run_commands(CARGO_BUILD)
        )
    return (
        image.add_local_file(HERE / "sandbox_entry.sh", "/usr/local/bin/sandbox-entry", copy=True)
        .run_commands(
            "chmod 0755 /usr/local/bin/sandbox-entry",
            "mkdir -p /workspace /memory",
            # The agent's own user: the bridge stays root and runs the agent's processes as this
            # one, so they read neither its token, its credential socket nor its journal.
            f"id -u {AGENT_USER} >/dev/null 2>&1 || useradd --create-home --shell /bin/bash {AGENT_USER}",
            f"install -d -m 0711 {BRIDGE_STATE_DIR}",
        )
        .env(
            {
                "WORKSPACE": "/workspace",
                "MEMORY_DIR": "/memory",
                "CHROMIUM_PATH": CHROMIUM_PATH,
                "AGENT_USER": AGENT_USER,
                "BRIDGE_STATE_DIR": BRIDGE_STATE_DIR,
            }
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bridge-binary", help="copy this prebuilt Linux x86-64 bridge instead of compiling it")
    parser.add_argument(
        "--name",
        default=os.environ.get("BASE_IMAGE_NAME", DEFAULT_IMAGE_NAME),
        help="published image name (the app reads BASE_IMAGE_NAME, default %(default)s)",
    )
    args = parser.parse_args(argv)

    import modal

    if not args.bridge_binary and not (REPO_ROOT / "crates" / "bridge" / "Cargo.toml").exists():
        print("crates/bridge is missing: run from a clone of the repository or pass --bridge-binary", file=sys.stderr)
        return 2
    app = modal.App.lookup(BUILDER_APP_NAME, create_if_missing=True)
    image = base_image(modal, bridge_binary=args.bridge_binary)
    with modal.enable_output():
        built = image.build(app)
    built.publish(args.name)
    print(f"published {args.name} ({built.object_id})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
