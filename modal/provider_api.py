"""The provider API (PROTOCOL.md section 5) on FastAPI: the routes, and the mapping of errors to bodies.

    GET    /health                     unsigned
    POST   /sandboxes                  201 {sandbox_id, provider_id, workspace, image_id?, dropped_env?}
    POST   /warm-sandboxes             201 {sandbox_id, provider_id}
    POST   /sandboxes/{id}/claim       200 {sandbox_id, provider_id}
    POST   /sandboxes/{id}/snapshot    200 {snapshot_id}
    DELETE /sandboxes/{id}             200 {}
    POST   /images                     202 {build_id}
    GET    /images/{build_id}          200 {status, image_id?, commit?, built_at?, error?}
    POST   /heads                      200 {branch, commit}

`guard.RequestGuard` admits a request first (body limit, signature). Bodies are validated by `validation`
against the contract's schema, not by FastAPI's models, so every refusal has the project's error body
``{"error": {"code", "message"}}``. The endpoints are plain ``def``s: FastAPI runs them in its thread
pool, where the Modal SDK's blocking calls belong. Nothing here imports `modal`: the Modal calls are
behind the backend (`sandboxes.ModalBackend`), the state behind a mapping.
"""

from __future__ import annotations

import logging
import subprocess
import time
from dataclasses import dataclass
from typing import Annotated, Any, Callable, MutableMapping

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

import builds
import heads
import provisioning
import validation
from config import Config
from errors import ApiError, scrub
from guard import RequestGuard
from state import StateStore

log = logging.getLogger("provider_api")


def _now_ms() -> float:
    return time.time() * 1000


@dataclass
class Provider:
    """What the endpoints work with."""

    config: Config
    backend: Any
    store: StateStore
    spawn_build: Callable[[str, dict, bool], Any] | None = None
    clock: Callable[[], float] = _now_ms
    config_error: str | None = None
    # Runs `git ls-remote` for POST /heads: subprocess.run, or a fake in tests.
    run_git: Callable = subprocess.run


async def _provider(request: Request) -> Provider:
    return request.app.state.provider


async def _body(request: Request) -> bytes:
    return await request.body()


Body = Annotated[bytes, Depends(_body)]
Context = Annotated[Provider, Depends(_provider)]
router = APIRouter()


@router.get("/health")
def health(provider: Context) -> dict:
    """The configuration's problems, and whether Modal takes the app's credentials (``App.lookup``)."""
    problems = [provider.config_error] if provider.config_error else provider.config.problems()
    if not problems and provider.backend is not None:
        try:
            provider.backend.check_app(provider.config.app_name)
        except ApiError as failure:
            problems = [failure.message]
    out = {
        "ok": not problems,
        "provider": "modal",
        "app": provider.config.app_name,
        # The sandbox image new repo images are built on: a new one has the coordinator rebuild them.
        "runtime_version": provider.config.base_image_name,
    }
    if problems:
        out["problems"] = problems
    return out


@router.post("/sandboxes", status_code=201)
def create_sandbox(body: Body, provider: Context) -> dict:
    request = validation.parse_create(body, provider.config)
    return provisioning.create(request, provider.config, provider.store, provider.backend, provider.clock)


@router.post("/warm-sandboxes", status_code=201)
def start_warm_sandbox(body: Body, provider: Context) -> dict:
    request = validation.parse_warm(body, provider.config)
    return provisioning.start_warm(request, provider.config, provider.store, provider.backend, provider.clock)


@router.post("/sandboxes/{sandbox_id}/claim")
def claim_sandbox(sandbox_id: str, body: Body, provider: Context) -> dict:
    request = validation.parse_claim(body)
    return provisioning.claim(sandbox_id, request, provider.config, provider.store, provider.backend, provider.clock)


@router.post("/sandboxes/{sandbox_id}/snapshot")
def snapshot_sandbox(sandbox_id: str, provider: Context) -> dict:
    return provisioning.snapshot(sandbox_id, provider.store, provider.backend, provider.clock)


@router.delete("/sandboxes/{sandbox_id}")
def delete_sandbox(sandbox_id: str, provider: Context) -> dict:
    return provisioning.delete(sandbox_id, provider.store, provider.backend, provider.clock)


@router.post("/images", status_code=202)
def start_image_build(body: Body, provider: Context) -> dict:
    repo, commit = validation.parse_build(body)
    if provider.spawn_build is None:
        raise ApiError(500, "internal", "image builds are not available here")
    build_id = builds.start_build(
        provider.store,
        provider.spawn_build,
        repo.to_dict(),
        provider.clock,
        timeout_s=provider.config.build_timeout_s,
        commit=commit,
    )
    return {"build_id": build_id}


@router.post("/heads")
def branch_head(body: Body, provider: Context) -> dict:
    repo = validation.parse_heads(body)
    return heads.lookup(repo.to_dict(), provider.run_git)


@router.get("/images/{build_id}")
def image_build_status(build_id: str, provider: Context) -> dict:
    if not builds.BUILD_ID_RE.match(build_id):
        raise ApiError(404, "not_found", "no such build")
    record = builds.build_status(provider.store, build_id, provider.clock, timeout_s=provider.config.build_timeout_s)
    if record is None:
        raise ApiError(404, "not_found", "no such build")
    out = {"status": record["status"]}
    for key in ("image_id", "commit", "built_at", "error"):
        if record.get(key):
            out[key] = record[key]
    return out


# ---------------------------------------------------------------------------------------------------
# Errors


async def _api_error(request: Request, err: ApiError) -> JSONResponse:
    if err.status >= 500:
        log.warning("%s %s -> %s %s", request.method, request.url.path, err.status, err.code)
    # Last line of defence: the provider's own secret never leaves in a message.
    secret = request.app.state.provider.config.provider_secret or ""
    body = ApiError(err.status, err.code, scrub(err.message, [secret])).body()
    return JSONResponse(body, status_code=err.status)


async def _routing_error(request: Request, exc: HTTPException) -> JSONResponse:
    """The router's own refusals (no such path, wrong method) in the project's error shape."""
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        return await _api_error(request, ApiError(405, "method_not_allowed", f"use {allowed}"))
    if exc.status_code == 404:
        return await _api_error(request, ApiError(404, "not_found", "no such endpoint"))
    return await _api_error(request, ApiError(500, "internal", "internal error"))


# ---------------------------------------------------------------------------------------------------
# The app


def create_app(provider: Provider) -> FastAPI:
    """The ASGI app `app.api` serves."""
    # No /docs or /openapi.json: the contract is PROTOCOL.md and provider.schema.json.
    app = FastAPI(title="provider API", docs_url=None, redoc_url=None, openapi_url=None, redirect_slashes=False)
    app.state.provider = provider
    app.include_router(router)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(HTTPException, _routing_error)
    app.add_middleware(
        RequestGuard, config=provider.config, clock=lambda: provider.clock(), config_error=provider.config_error
    )
    return app


def app_from_env(backend: Any, state: MutableMapping, **kw) -> FastAPI:
    """The app configured from the environment; a bad setting is reported (500, and by /health), not a crash."""
    try:
        config, error = Config.from_env(), None
    except ValueError as err:
        config, error = Config(provider_secret=None), str(err)
    return create_app(Provider(config, backend, StateStore(state), config_error=error, **kw))
