"""sandbox_entry.sh against local git repositories (needs `git` and `sh`; skipped without them)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "sandbox_entry.sh"

pytestmark = pytest.mark.skipif(not shutil.which("git") or not shutil.which("sh"), reason="needs git and sh")


def git(*args, cwd=None):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def origin(tmp_path):
    repo = tmp_path / "origin"
    repo.mkdir()
    git("init", "-q", "-b", "main", cwd=repo)
    (repo / "README.md").write_text("hello\n")
    git("-c", "user.name=t", "-c", "user.email=t@e", "add", ".", cwd=repo)
    git("-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "one", cwd=repo)
    git("branch", "feature", cwd=repo)
    return repo


def run(tmp_path, origin, mode, *command, branch="main", extra=None):
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "GIT_CONFIG_NOSYSTEM": "1",
        "WORKSPACE": str(tmp_path / "workspace"),
        "MEMORY_DIR": str(tmp_path / "memory"),
        "WORKSPACE_MODE": mode,
        "REPO_OWNER": "acme",
        "REPO_NAME": "web",
        "REPO_BRANCH": branch,
        "REPO_CLONE_URL": origin.as_uri(),
        **(extra or {}),
    }
    return subprocess.run(["sh", str(SCRIPT), *command], env=env, capture_output=True, text=True, timeout=30)


def test_clone_mode_leaves_an_empty_workspace_for_the_bridge_to_clone(tmp_path, origin):
    # The bridge clones REPO_CLONE_URL at REPO_BRANCH itself, through its credential helper.
    done = run(tmp_path, origin, "clone", "sh", "-c", "pwd; ls -A | wc -l; echo $REPO_CLONE_URL $REPO_BRANCH", branch="feature")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(tmp_path / "workspace"), "0", origin.as_uri(), "feature"]
    assert (tmp_path / "memory").is_dir()


def test_clone_mode_keeps_a_workspace_that_is_there(tmp_path, origin):
    assert run(tmp_path, origin, "prepare", "prepare").returncode == 0
    done = run(tmp_path, origin, "clone", "git", "rev-parse", "--abbrev-ref", "HEAD")
    assert done.returncode == 0 and done.stdout.strip() == "main", done.stderr


def test_restore_mode_leaves_the_workspace_alone(tmp_path, origin):
    assert run(tmp_path, origin, "prepare", "prepare").returncode == 0
    (tmp_path / "workspace" / "work.txt").write_text("agent edits\n")
    done = run(tmp_path, origin, "restore", "cat", "work.txt")
    assert done.returncode == 0 and done.stdout == "agent edits\n"


def test_image_mode_fetches_the_requested_branch(tmp_path, origin):
    assert run(tmp_path, origin, "prepare", "prepare").returncode == 0  # what a repo image build does
    (origin / "NEW.md").write_text("new\n")
    git("-c", "user.name=t", "-c", "user.email=t@e", "add", ".", cwd=origin)
    git("-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "two", cwd=origin)
    done = run(tmp_path, origin, "image", "ls")
    assert done.returncode == 0, done.stderr
    assert "NEW.md" in done.stdout.split()


def test_a_token_for_image_builds_is_used_without_landing_on_disk_or_in_output(tmp_path, origin):
    token = "ghs_secret_token_value_123456"
    done = run(tmp_path, origin, "prepare", "prepare", extra={"GITHUB_TOKEN": token})
    assert done.returncode == 0, done.stderr
    assert token not in done.stdout + done.stderr
    config = (tmp_path / "workspace" / ".git" / "config").read_text()
    assert "credential" in config and token not in config


def test_an_unknown_mode_fails(tmp_path, origin):
    assert run(tmp_path, origin, "bogus", "true").returncode == 2


def test_the_sandbox_token_leaves_the_environment_for_a_file_only_the_bridge_reads(tmp_path, origin):
    token = "sbx1.ses_1.sbx_1.the-token.0123abcd"
    shown = (
        'env | grep -c "^SANDBOX_TOKEN=" || true; '
        'echo "file=$SANDBOX_TOKEN_FILE"; stat -c %a "$SANDBOX_TOKEN_FILE" "$(dirname "$SANDBOX_TOKEN_FILE")"; '
        'cat "$SANDBOX_TOKEN_FILE"; echo'
    )
    done = run(
        tmp_path, origin, "clone", "sh", "-c", shown,
        extra={"SANDBOX_TOKEN": token, "SANDBOX_TOKEN_DIR": str(tmp_path), "REPO_OWNER": f"acme{token}"},
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    # No variable holds it; the file does, readable by its owner alone, in a folder of its own.
    assert lines[0] == "0"
    assert lines[1].startswith(f"file={tmp_path}/sandbox-token.")
    assert lines[2:4] == ["600", "700"]
    assert lines[4] == token
    # The script's own log lines hide it (here it is in the repo owner it prints).
    assert token not in done.stderr and "acme***" in done.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, as a Modal sandbox runs")
def test_as_root_the_workspace_and_home_become_the_agents_users_and_the_memory_and_state_folders_stay_roots(tmp_path, origin):
    assert run(tmp_path, origin, "prepare", "prepare").returncode == 0
    state = tmp_path / "state"
    shown = 'stat -c %U "$WORKSPACE" "$WORKSPACE/README.md"; stat -c "%U %a" "$MEMORY_DIR"; echo "home=$HOME"; stat -c "%U %a" "$BRIDGE_STATE_DIR"; echo "$AGENT_USER"'
    done = run(
        tmp_path, origin, "image", "sh", "-c", shown,
        extra={"AGENT_USER": "nobody", "BRIDGE_STATE_DIR": str(state)},
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == ["nobody", "nobody"]
    # The memory Volume: the bridge makes each owner's folder in it; no agent lists the others.
    assert lines[2] == "root 711"
    assert lines[3] == "home=/nonexistent"  # nobody's home in the passwd file
    assert lines[4:] == ["root 711", "nobody"]


def test_an_agent_user_that_does_not_exist_leaves_the_agent_as_the_bridges_user(tmp_path, origin):
    done = run(tmp_path, origin, "clone", "sh", "-c", 'echo "user=${AGENT_USER:-}"', extra={"AGENT_USER": "no-such-user-here"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "user="
