"""``POST /heads``: a branch's head by ``git ls-remote``, with a fake in place of ``subprocess.run``."""

import subprocess

from provider_helpers import call, make_api

HEAD = "0123456789abcdef" * 2 + "01234567"


class FakeGit:
    """Answers ``git ls-remote`` as git does, and records the commands."""

    def __init__(self, stdout="", returncode=0, stderr="", raises=None):
        self.stdout, self.returncode, self.stderr, self.raises = stdout, returncode, stderr, raises
        self.calls = []

    def __call__(self, args, **kwargs):
        self.calls.append((args, kwargs))
        if self.raises:
            raise self.raises
        return subprocess.CompletedProcess(args, self.returncode, self.stdout, self.stderr)


def lookup(api, **repo):
    return call(api, "POST", "/heads", {"repo": {"owner": "acme", "name": "web", "branch": "main", **repo}})


def test_the_head_of_the_branch_from_ls_remote(fake_modal):
    git = FakeGit(stdout=f"{HEAD}\trefs/heads/main\n")
    api = make_api(fake_modal, run_git=git)
    assert lookup(api) == (200, {"branch": "main", "commit": HEAD})
    (args, kwargs), = git.calls
    assert args == ["git", "ls-remote", "--heads", "--", "https://github.com/acme/web.git", "refs/heads/main"]
    # No terminal to ask for a password, and nothing of the app's environment (its secrets).
    assert kwargs["env"]["GIT_TERMINAL_PROMPT"] == "0" and "PROVIDER_SECRET" not in kwargs["env"]
    assert kwargs["timeout"] > 0

    git = FakeGit(stdout=f"{HEAD}\trefs/heads/main\n")
    api = make_api(fake_modal, run_git=git)
    lookup(api, clone_url="https://git.example.com/acme/web.git")
    assert git.calls[0][0][4] == "https://git.example.com/acme/web.git"


def test_a_missing_branch_or_repository_is_404_and_git_failing_to_run_is_502(fake_modal):
    api = make_api(fake_modal, run_git=FakeGit(stdout=f"{HEAD}\trefs/heads/mainline\n"))
    status, payload = lookup(api)
    assert status == 404 and payload["error"]["code"] == "not_found"
    leaked = "ghp_abcdefghijklmnopqrstuvwxyz0123456789"
    api = make_api(fake_modal, run_git=FakeGit(returncode=128, stderr=f"fatal: https://{leaked}@github.com not found"))
    status, payload = lookup(api)
    assert status == 404 and leaked not in payload["error"]["message"]
    api = make_api(fake_modal, run_git=FakeGit(raises=subprocess.TimeoutExpired("git", 30)))
    assert lookup(api)[0] == 502
    api = make_api(fake_modal, run_git=FakeGit(raises=FileNotFoundError("git")))
    assert lookup(api)[0] == 502


def test_a_bad_body_is_refused_before_git_runs(fake_modal):
    git = FakeGit()
    api = make_api(fake_modal, run_git=git)
    status, payload = call(api, "POST", "/heads", {"repo": {"owner": "acme", "name": "web", "branch": "-x"}})
    assert (status, payload["error"]["code"]) == (422, "invalid_field")
    assert git.calls == []
