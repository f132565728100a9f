"""What the sandbox endpoints do, without HTTP: create (idempotent, with the repo-image fallback), snapshot, end.

Each function takes the validated request, the app's `Config`, the `StateStore`, the backend (see
`sandboxes.ModalBackend`) and the clock, and returns the answer's JSON body or raises `ApiError`.

Backend interface (duck-typed):

- ``create_sandbox(plan: SandboxPlan) -> str`` (the Modal sandbox object id)
- ``snapshot_sandbox(provider_id: str) -> str`` (the image object id)
- ``terminate_sandbox(provider_id: str) -> None``
- ``find_sandbox(sandbox_id: str) -> str | None`` (look-up by tag when the state has no record)
- ``assign_sandbox(provider_id: str, path: str, text: str) -> None`` (a warm sandbox's assignment file)

Backends raise `ProviderFailure` (or `ApiError`) with messages that are safe to show.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable

import builds
import validation
from config import Config
from errors import ApiError, ProviderFailure, invalid
from planning import ASSIGNMENT_FILE, plan_sandbox, plan_warm
from state import StateStore, iso_utc, sandbox_key, snapshot_key
from validation import ClaimRequest, CreateRequest

log = logging.getLogger("provisioning")

Clock = Callable[[], float]


def create(req: CreateRequest, config: Config, store: StateStore, backend: Any, clock: Clock) -> dict:
    """``POST /sandboxes`` after validation: the sandbox, or the one a first try of this request made."""
    if req.coordinator_origin not in config.coordinator_allowlist:
        raise ApiError(403, "forbidden", f"coordinator_url {req.coordinator_origin} is not in COORDINATOR_ALLOWLIST")

    existing = store.get(sandbox_key(req.sandbox_id))
    if existing:
        if existing.get("session_id") != req.session_id:
            raise ApiError(409, "conflict", "sandbox_id is already used by another session")
        # A retried create: answer with the sandbox that was made the first time.
        return {"sandbox_id": req.sandbox_id, "provider_id": existing["provider_id"]}

    if req.snapshot_id:
        # A snapshot is restored only into the session whose sandbox it was taken of.
        owner = (store.get(snapshot_key(req.snapshot_id)) or {}).get("session_id")
        if owner != req.session_id:
            raise invalid(f"snapshot {req.snapshot_id} belongs to another session")

    repo_image = None
    if not req.snapshot_id and not req.image_id:
        repo_image = builds.latest_image(store, req.repo.owner, req.repo.name, req.repo.branch)
    plan = plan_sandbox(req, config, repo_image)
    try:
        provider_id = backend.create_sandbox(plan)
    except ProviderFailure as failure:
        if repo_image is None or not failure.missing:
            raise
        # The recorded repo image may be gone (snapshots expire): clone from the base image instead,
        # and forget the recorded image once that worked.
        log.warning("creating from the repo image of %s failed; trying the base image", req.repo.full_name)
        plan = plan_sandbox(req, config, None)
        provider_id = backend.create_sandbox(plan)
        builds.forget_latest_image(store, req.repo.owner, req.repo.name, req.repo.branch)

    store.put(
        sandbox_key(req.sandbox_id),
        {
            "provider_id": provider_id,
            "session_id": req.session_id,
            "repo": req.repo.full_name,
            "image_kind": plan.image_kind,
            "created_at": iso_utc(clock()),
        },
    )
    log.info(
        "created sandbox %s (session %s, repo %s, workspace %s) as %s",
        req.sandbox_id, req.session_id, req.repo.full_name, plan.workspace_mode, provider_id,
    )
    out = {"sandbox_id": req.sandbox_id, "provider_id": provider_id, "workspace": plan.workspace_mode}
    if plan.image_kind != "base":
        out["image_id"] = plan.image_ref
    if plan.dropped_env:
        out["dropped_env"] = plan.dropped_env
    return out


def _find(sandbox_id: str, store: StateStore, backend: Any) -> tuple[str, dict]:
    """(provider_id, record) of a sandbox this app made; 404 when it knows none by that id."""
    if not validation.matches("CreateSandbox", "sandbox_id", sandbox_id):
        raise ApiError(404, "not_found", "no such sandbox")
    record = store.get(sandbox_key(sandbox_id))
    if record:
        return record["provider_id"], record
    provider_id = backend.find_sandbox(sandbox_id)
    if not provider_id:
        raise ApiError(404, "not_found", "no such sandbox")
    return provider_id, {"provider_id": provider_id}


def snapshot(sandbox_id: str, store: StateStore, backend: Any, clock: Clock) -> dict:
    """``POST /sandboxes/:id/snapshot``: the filesystem as an image; 409 once the sandbox has ended."""
    provider_id, record = _find(sandbox_id, store, backend)
    if record.get("ended_at"):
        raise ApiError(409, "conflict", "the sandbox has ended")
    snapshot_id = backend.snapshot_sandbox(provider_id)
    # Whose it is: a create naming it for another session is refused. A sandbox found only by its
    # tag has no recorded session, and its snapshot can then be restored by none.
    store.put(snapshot_key(snapshot_id), {"session_id": record.get("session_id"), "sandbox_id": sandbox_id})
    store.put(sandbox_key(sandbox_id), dict(record, last_snapshot_id=snapshot_id, last_snapshot_at=iso_utc(clock())))
    log.info("snapshot of sandbox %s: %s", sandbox_id, snapshot_id)
    return {"snapshot_id": snapshot_id}


def delete(sandbox_id: str, store: StateStore, backend: Any, clock: Clock) -> dict:
    """``DELETE /sandboxes/:id``: terminate once; repeating it changes nothing."""
    provider_id, record = _find(sandbox_id, store, backend)
    if not record.get("ended_at"):
        backend.terminate_sandbox(provider_id)
        store.put(sandbox_key(sandbox_id), dict(record, ended_at=iso_utc(clock())))
        log.info("terminated sandbox %s (%s)", sandbox_id, provider_id)
    return {}


def start_warm(req: CreateRequest, config: Config, store: StateStore, backend: Any, clock: Clock) -> dict:
    """``POST /warm-sandboxes``: a sandbox bound to no session, from the latest repo image when there is one."""
    existing = store.get(sandbox_key(req.sandbox_id))
    if existing:
        if not existing.get("warm"):
            raise ApiError(409, "conflict", "sandbox_id is already used by another sandbox")
        return {"sandbox_id": req.sandbox_id, "provider_id": existing["provider_id"]}
    repo_image = None
    if not req.image_id:
        repo_image = builds.latest_image(store, req.repo.owner, req.repo.name, req.repo.branch)
    plan = plan_warm(req, config, repo_image)
    provider_id = backend.create_sandbox(plan)
    store.put(
        sandbox_key(req.sandbox_id),
        {
            "provider_id": provider_id,
            "session_id": None,
            "warm": True,
            "repo": req.repo.full_name,
            "image_kind": plan.image_kind,
            "created_at": iso_utc(clock()),
        },
    )
    log.info("started warm sandbox %s (repo %s, workspace %s) as %s", req.sandbox_id, req.repo.full_name, plan.workspace_mode, provider_id)
    return {"sandbox_id": req.sandbox_id, "provider_id": provider_id}


def claim(sandbox_id: str, req: ClaimRequest, config: Config, store: StateStore, backend: Any, clock: Clock) -> dict:
    """``POST /sandboxes/:id/claim``: the assignment written into the running warm sandbox, once."""
    if req.coordinator_origin not in config.coordinator_allowlist:
        raise ApiError(403, "forbidden", f"coordinator_url {req.coordinator_origin} is not in COORDINATOR_ALLOWLIST")
    if not validation.matches("CreateSandbox", "sandbox_id", sandbox_id):
        raise ApiError(404, "not_found", "no such sandbox")
    record = store.get(sandbox_key(sandbox_id))
    if not record:
        raise ApiError(404, "not_found", "no such sandbox")
    if not record.get("warm") or record.get("ended_at"):
        raise ApiError(409, "conflict", "this sandbox is not a waiting warm sandbox")
    if record.get("session_id"):
        if record["session_id"] == req.session_id:
            # A retried claim: the assignment is written already.
            return {"sandbox_id": sandbox_id, "provider_id": record["provider_id"]}
        raise ApiError(409, "conflict", "this sandbox was claimed already")
    assignment = json.dumps(
        {"session_id": req.session_id, "coordinator_url": req.coordinator_url, "sandbox_token": req.sandbox_token}
    )
    backend.assign_sandbox(record["provider_id"], ASSIGNMENT_FILE, assignment)
    store.put(sandbox_key(sandbox_id), dict(record, session_id=req.session_id, claimed_at=iso_utc(clock())))
    log.info("warm sandbox %s claimed by session %s", sandbox_id, req.session_id)
    return {"sandbox_id": sandbox_id, "provider_id": record["provider_id"]}
