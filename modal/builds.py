"""Repo images: start a build of a commit, run it, record the result (plain Python).

Builds are asked for by the coordinator's cron (``POST /images`` with the commit it found at the
default branch's head); this app keeps no schedule of its own.

State keys (in the app's `modal.Dict`):

- ``build:<build_id>`` → ``{status, repo, branch, commit?, started_at, image_id?, built_at?, error?}``
- ``build-inflight:<owner>/<name>@<branch>`` → the build_id of a build still running for that branch
- ``image:<owner>/<name>@<branch>`` → the latest ready image of that branch
- ``image:<owner>/<name>`` → the latest ready image of the repo (whatever its branch)

`POST /sandboxes` without ``image_id``/``snapshot_id`` uses the branch's image, else the repo's.
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Callable

from errors import ApiError, ProviderFailure, scrub
from planning import WORKSPACE_DIR
from state import iso_utc

log = logging.getLogger("builds")

BUILD_ID_RE = re.compile(r"^bld_[0-9a-f]{16}$")
# A build still "building" this long after its deadline has died (its function was killed).
STALE_GRACE_S = 300


def _now_iso(clock: Callable[[], float]) -> str:
    return iso_utc(clock())


def _repo_key(owner: str, name: str) -> str:
    return f"{owner.lower()}/{name.lower()}"


def latest_image(store, owner: str, name: str, branch: str) -> dict | None:
    """The recorded image for ``owner/name`` at ``branch``, else for its default branch, else None."""
    key = _repo_key(owner, name)
    return store.get(f"image:{key}@{branch}") or store.get(f"image:{key}")


def forget_latest_image(store, owner: str, name: str, branch: str) -> None:
    key = _repo_key(owner, name)
    for k in (f"image:{key}@{branch}", f"image:{key}"):
        if store.get(k):
            store.put(k, None)


def build_status(store, build_id: str, clock: Callable[[], float], timeout_s: int) -> dict | None:
    """The build's record; a build past its deadline that never finished is reported as failed."""
    record = store.get(f"build:{build_id}")
    if record and record.get("status") == "building":
        age_s = (clock() - record.get("started_ms", 0)) / 1000
        if age_s > timeout_s + STALE_GRACE_S:
            record = dict(record, status="failed", error="the build did not finish in time")
            store.put(f"build:{build_id}", record)
    return record


def start_build(
    store,
    spawn: Callable[[str, dict, bool], Any],
    repo: dict,
    clock: Callable[[], float],
    *,
    timeout_s: int,
    commit: str | None = None,
    set_default: bool = False,
) -> str:
    """Record a new build of ``commit`` (the branch's head when None) and spawn it; a build still
    running for the same branch and commit is reused."""
    inflight_key = f"build-inflight:{_repo_key(repo['owner'], repo['name'])}@{repo['branch']}"
    running = store.get(inflight_key)
    if running:
        record = build_status(store, running, clock, timeout_s)
        if record and record.get("status") == "building" and record.get("commit") == commit:
            return running
    build_id = "bld_" + secrets.token_hex(8)
    store.put(
        f"build:{build_id}",
        {
            "status": "building",
            "repo": f"{repo['owner']}/{repo['name']}",
            "branch": repo["branch"],
            "commit": commit,
            "started_at": _now_iso(clock),
            "started_ms": clock(),
        },
    )
    store.put(inflight_key, build_id)
    try:
        spawn(build_id, dict(repo, commit=commit) if commit else repo, set_default)
    except Exception as exc:  # noqa: BLE001
        store.put(inflight_key, None)
        store.put(
            f"build:{build_id}",
            dict(store.get(f"build:{build_id}") or {}, status="failed", error="could not start the build"),
        )
        raise ProviderFailure(f"could not start the image build ({type(exc).__name__})") from None
    log.info("image build %s started for %s@%s", build_id, repo["owner"] + "/" + repo["name"], repo["branch"])
    return build_id


@dataclass
class BuildPlan:
    """What `ModalBackend.build_repo_image` needs: a sandbox on the base image that clones and installs."""

    build_id: str
    repo: dict
    base_image_name: str
    env: dict
    secret_names: list
    tags: dict
    timeout_s: int
    cpu: float = 2.0
    memory_mb: int = 4096
    secret_values: list = field(default_factory=list, repr=False)


def plan_build(build_id: str, repo: dict, *, base_image_name: str, build_secret: str | None, timeout_s: int) -> BuildPlan:
    """``repo`` may carry ``commit``: the entry script checks it out after the clone (``REPO_COMMIT``)."""
    clone_url = repo.get("clone_url") or f"https://github.com/{repo['owner']}/{repo['name']}.git"
    env = {
        "REPO_OWNER": repo["owner"],
        "REPO_NAME": repo["name"],
        "REPO_BRANCH": repo["branch"],
        "REPO_CLONE_URL": clone_url,
        "WORKSPACE": WORKSPACE_DIR,
        "WORKSPACE_MODE": "prepare",
    }
    if repo.get("commit"):
        env["REPO_COMMIT"] = repo["commit"]
    return BuildPlan(
        build_id=build_id,
        repo=repo,
        base_image_name=base_image_name,
        env=env,
        secret_names=[build_secret] if build_secret else [],
        tags={"role": "image-build", "build_id": build_id, "repo": f"{repo['owner']}/{repo['name']}"},
        timeout_s=timeout_s,
    )


def run_build(store, backend, build_id: str, repo: dict, clock: Callable[[], float], *,
              base_image_name: str, build_secret: str | None, timeout_s: int, set_default: bool = False) -> dict:
    """Build the repo image in a sandbox, snapshot it, and record the result (never raises)."""
    key = f"build:{build_id}"
    record = dict(store.get(key) or {"repo": f"{repo['owner']}/{repo['name']}", "branch": repo["branch"]})
    plan = plan_build(build_id, repo, base_image_name=base_image_name, build_secret=build_secret, timeout_s=timeout_s)
    try:
        result = backend.build_repo_image(plan)
    except Exception as exc:  # noqa: BLE001
        message = exc.message if isinstance(exc, ProviderFailure) else f"internal error ({type(exc).__name__})"
        record.update(status="failed", error=scrub(message), finished_at=_now_iso(clock))
        log.warning("image build %s failed: %s", build_id, record["error"])
    else:
        if repo.get("commit") and result.get("commit") and result["commit"] != repo["commit"]:
            record.update(
                status="failed",
                error=f"the image holds {result['commit']}, not the asked-for {repo['commit']}",
                finished_at=_now_iso(clock),
            )
            store.put(key, record)
            _end_inflight(store, repo, build_id)
            return record
        record.update(
            status="ready",
            image_id=result["image_id"],
            commit=result.get("commit"),
            built_at=_now_iso(clock),
        )
        latest = {
            "image_id": result["image_id"],
            "commit": result.get("commit"),
            "built_at": record["built_at"],
            "branch": repo["branch"],
            "build_id": build_id,
        }
        repo_key = _repo_key(repo["owner"], repo["name"])
        store.put(f"image:{repo_key}@{repo['branch']}", latest)
        if set_default:
            store.put(f"image:{repo_key}", latest)
        log.info("image build %s ready: %s (%s)", build_id, result["image_id"], result.get("commit"))
    store.put(key, record)
    _end_inflight(store, repo, build_id)
    return record


def _end_inflight(store, repo: dict, build_id: str) -> None:
    inflight_key = f"build-inflight:{_repo_key(repo['owner'], repo['name'])}@{repo['branch']}"
    if store.get(inflight_key) == build_id:
        store.put(inflight_key, None)
