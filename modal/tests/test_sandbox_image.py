"""The base image definition (recorded by the fake `modal`; nothing is built)."""

import sandbox_image


def flat(steps):
    return " | ".join(repr(step) for step in steps)


def test_base_image_compiles_the_bridge_from_the_workspace(fake_modal):
    steps = sandbox_image.base_image(fake_modal).steps
    assert steps[0] == ("from_registry", "node:22-bookworm")
    text = flat(steps)
    assert "npm install -g --no-audit --no-fund opencode-ai@1.18.33" in text
    assert "cargo build --release --locked -p bridge" in text
    assert "rm -rf /tmp/rustup /tmp/cargo target" in text
    copied = {str(s[1][1]) for s in steps if s[0] in ("add_local_file", "add_local_dir")}
    assert copied == {
        "/opt/coordinator-src/Cargo.toml",
        "/opt/coordinator-src/Cargo.lock",
        "/opt/coordinator-src/src",
        "/opt/coordinator-src/crates",
        "/usr/local/bin/sandbox-entry",
    }
    assert all(s[2].get("copy") is True for s in steps if s[0] in ("add_local_file", "add_local_dir"))
    assert ("entrypoint", ([],), {}) in steps


def test_the_agent_gets_a_user_of_its_own_and_the_bridge_a_folder_it_cannot_read(fake_modal):
    steps = sandbox_image.base_image(fake_modal).steps
    text = flat(steps)
    assert "useradd --create-home --shell /bin/bash agent" in text
    assert "install -d -m 0711 /var/lib/bridge" in text
    env = [s[1][0] for s in steps if s[0] == "env"][-1]
    assert env["AGENT_USER"] == "agent"
    assert env["BRIDGE_STATE_DIR"] == "/var/lib/bridge"


def test_base_image_can_copy_a_prebuilt_bridge(fake_modal, tmp_path):
    binary = tmp_path / "bridge"
    binary.write_bytes(b"\x7fELF")
    steps = sandbox_image.base_image(fake_modal, bridge_binary=binary).steps
    text = flat(steps)
    assert "cargo" not in text
    assert ("add_local_file", (binary, "/usr/local/bin/bridge"), {"copy": True}) in steps


def test_base_image_carries_what_the_agent_configuration_runs(fake_modal):
    """Every program the bridge's opencode.json template names is installed, and Chromium for playwright."""
    import json
    from pathlib import Path

    steps = sandbox_image.base_image(fake_modal).steps
    text = flat(steps)
    assert ("apt_install", ("ripgrep", "jq", "chromium"), {}) in steps
    for package in sandbox_image.MCP_PACKAGES:
        assert package in text
    template = json.loads(
        (Path(sandbox_image.REPO_ROOT) / "crates/bridge/agent-config/opencode.json").read_text()
    )
    programs = {server["command"][0] for server in template["mcp"].values() if server["type"] == "local"}
    assert programs == {"mcp-server-memory", "mcp-server-filesystem", "playwright-mcp"}
    assert f"command -v {' '.join(sorted(programs, key=['mcp-server-memory', 'mcp-server-filesystem', 'playwright-mcp'].index))}" in text
    env = [s for s in steps if s[0] == "env"][-1][1][0]
    assert env["MEMORY_DIR"] == "/memory"
    assert env["CHROMIUM_PATH"] == "/usr/bin/chromium"
