"""``POST /heads``: where a branch stands on its git host, by ``git ls-remote`` (plain Python).

The coordinator asks when GitHub is not configured for the repository (with GitHub it reads the
head through GitHub's API itself). ``run`` is ``subprocess.run`` in the app and a fake in tests;
no credential is used, so a repository that needs one answers as not found.
"""

from __future__ import annotations

import re
import subprocess
from typing import Callable

from errors import ApiError, ProviderFailure, scrub

COMMIT_RE = re.compile(r"^([0-9a-f]{40}|[0-9a-f]{64})$")
TIMEOUT_S = 30


def clone_url(repo: dict) -> str:
    return repo.get("clone_url") or f"https://github.com/{repo['owner']}/{repo['name']}.git"


def lookup(repo: dict, run: Callable = subprocess.run) -> dict:
    """``{branch, commit}`` of ``repo['branch']``; 404 when the branch (or the repository) is not there."""
    ref = f"refs/heads/{repo['branch']}"
    try:
        done = run(
            ["git", "ls-remote", "--heads", "--", clone_url(repo), ref],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/local/bin:/usr/bin:/bin"},
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise ProviderFailure(f"git ls-remote did not answer within {TIMEOUT_S} s") from None
    except OSError as exc:
        raise ProviderFailure(f"git ls-remote could not run ({type(exc).__name__})") from None
    if done.returncode != 0:
        tail = scrub((done.stderr or "")[-300:]).strip()
        raise ApiError(404, "not_found", f"the repository could not be read: {tail}")
    for line in (done.stdout or "").splitlines():
        commit, _, name = line.partition("\t")
        if name == ref and COMMIT_RE.match(commit):
            return {"branch": repo["branch"], "commit": commit}
    raise ApiError(404, "not_found", f"no branch {repo['branch']}")
