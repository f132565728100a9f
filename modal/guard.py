"""What every request passes before routing: the body limit, the coordinator's signature, the last-resort 500.

An ASGI middleware in front of the FastAPI router (Starlette's "pure ASGI middleware"), because the
signature covers the raw body and must be checked before routing: an unsigned caller learns nothing,
not even which paths exist. ``GET /health`` is the one unsigned endpoint.

Order, as before the split: a bad configuration (500), a body over the limit (413, refused on its
``content-length`` before reading, else while reading), no ``PROVIDER_SECRET`` (500), a bad signature
(401). An exception no handler turned into an answer becomes 500 ``internal`` with only its class name
logged: a traceback could carry a token.
"""

from __future__ import annotations

import logging
from typing import Callable

from starlette.responses import JSONResponse

from config import Config
from errors import ApiError
from signature import SIGNATURE_HEADER, NonceCache, SignatureError, verify

log = logging.getLogger("provider_api")

UNSIGNED_PATHS = frozenset({"/health"})


class _Disconnected(Exception):
    """The client went away while its body was being read."""


def _reply(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status)


class RequestGuard:
    def __init__(self, app, *, config: Config, clock: Callable[[], float], config_error: str | None = None):
        self.app = app
        self.config = config
        self.clock = clock
        self.config_error = config_error
        # One container serves the API (`max_containers=1` in app.py), so its memory sees every nonce.
        self.nonces = NonceCache()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # `/sandboxes/` is `/sandboxes`, as the coordinator's paths never end with a slash.
        scope = dict(scope, path="/" + scope["path"].strip("/"))
        started = False

        async def tracked_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            if scope["path"] in UNSIGNED_PATHS:
                await self.app(scope, receive, tracked_send)
                return
            try:
                body = await self._admit(scope, receive)
            except _Disconnected:
                return
            except ApiError as refusal:
                await _reply(refusal)(scope, receive, tracked_send)
                return
            await self.app(scope, _replay(body, receive), tracked_send)
        except Exception as exc:  # noqa: BLE001 - never leak a traceback or a value
            log.error("%s %s -> 500 (%s)", scope.get("method"), scope["path"], type(exc).__name__)
            if not started:
                await _reply(ApiError(500, "internal", "internal error"))(scope, receive, send)

    async def _admit(self, scope, receive) -> bytes:
        """The whole body of a request that may be routed; raises the `ApiError` refusing it."""
        if self.config_error:
            raise ApiError(500, "internal", f"the provider is misconfigured: {self.config_error}")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        limit = self.config.max_body_bytes
        too_large = ApiError(413, "too_large", f"the body is over {limit} bytes")
        try:
            declared = int(headers.get("content-length") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            raise too_large
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)

        if not self.config.provider_secret:
            raise ApiError(500, "internal", "the provider is not configured (PROVIDER_SECRET is not set)")
        now = int(self.clock())
        try:
            verified = verify(
                [self.config.provider_secret, self.config.provider_secret_previous],
                headers.get(SIGNATURE_HEADER.lower()),
                scope.get("method", ""),
                _path_and_query(scope),
                body,
                now,
            )
            self.nonces.admit(verified, now)
        except SignatureError as err:
            raise ApiError(401, "unauthorized", str(err)) from None
        return body


def _path_and_query(scope) -> str:
    """The path as the client sent it (still percent-encoded), and its query: what the coordinator signed."""
    raw = scope.get("raw_path") or scope["path"].encode("utf-8")
    path = raw.decode("latin-1")
    query = scope.get("query_string") or b""
    return f"{path}?{query.decode('latin-1')}" if query else path


def _replay(body: bytes, receive):
    """A ``receive`` that hands the router the body already read, then waits on the client as before."""
    delivered = False

    async def replay():
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
