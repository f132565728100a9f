"""Shared helpers for the provider API tests: the FastAPI app under a test client, signed calls, a valid body.

Every 2xx answer a test gets through `call` is also checked against the contract's schema, so the
coordinator's types can read what the app says.
"""

from __future__ import annotations

import copy
import uuid
import json
import re

from fastapi.testclient import TestClient

import signature
import validation
from config import Config
from provider_api import Provider, create_app
from sandboxes import ModalBackend
from state import StateStore

SECRET = "test-provider-secret-0123456789"
COORDINATOR = "https://coord.example.com"
NOW_MS = 1_800_000_000_000
TOKEN = "sbxtok_5f2d8c1e9a7b4e3d2c1b0a99"

# (method, path) -> the schema definition of a successful answer.
ANSWERS = [
    ("GET", re.compile(r"^/health$"), "ProviderHealth"),
    ("POST", re.compile(r"^/sandboxes$"), "CreatedSandbox"),
    ("POST", re.compile(r"^/warm-sandboxes$"), "CreatedSandbox"),
    ("POST", re.compile(r"^/sandboxes/[^/]+/claim$"), "CreatedSandbox"),
    ("POST", re.compile(r"^/sandboxes/[^/]+/snapshot$"), "SnapshotTaken"),
    ("POST", re.compile(r"^/images$"), "ImageBuildStarted"),
    ("GET", re.compile(r"^/images/[^/]+$"), "ImageBuild"),
    ("POST", re.compile(r"^/heads$"), "Head"),
]


class Clock:
    def __init__(self, now_ms: float = NOW_MS):
        self.now = now_ms

    def __call__(self) -> float:
        return self.now


class ApiClient:
    """The app and a test client, with the parts of its `Provider` the tests look into."""

    def __init__(self, app, spawned=None):
        self.app = app
        self.provider: Provider = app.state.provider
        self.client = TestClient(app)
        self.spawned = [] if spawned is None else spawned

    @property
    def store(self) -> StateStore:
        return self.provider.store

    @property
    def clock(self):
        return self.provider.clock

    @property
    def backend(self):
        return self.provider.backend

    @backend.setter
    def backend(self, backend):
        self.provider.backend = backend

    def handle(self, method: str, path: str, headers: dict, body: bytes) -> tuple[int, dict]:
        """One request: (status, parsed JSON body)."""
        response = self.client.request(method, path, content=body, headers=headers)
        assert response.headers["content-type"] == "application/json", response.headers
        return response.status_code, response.json()


def make_api(fake_modal, *, state=None, clock=None, spawn=None, run_git=None, **config):
    options = dict(
        provider_secret=SECRET,
        coordinator_allowlist=frozenset({COORDINATOR}),
        model_keys_secret="session-coordinator-model-keys",
    )
    options.update(config)
    spawned = []

    def default_spawn(build_id, repo, set_default):
        spawned.append((build_id, repo, set_default))

    provider = Provider(
        Config(**options),
        ModalBackend(fake_modal, app="the-app"),
        StateStore({} if state is None else state),
        spawn_build=spawn or default_spawn,
        clock=clock or Clock(),
    )
    if run_git is not None:
        provider.run_git = run_git
    return ApiClient(create_app(provider), spawned)


def check_answer(method: str, path: str, status: int, payload: dict) -> None:
    """A 2xx answer matches the schema of what the coordinator deserializes."""
    if not 200 <= status < 300:
        return
    for answer_method, pattern, definition in ANSWERS:
        if answer_method == method.upper() and pattern.match(path):
            validation.validator_for(definition).validate(payload)


def encode(body) -> bytes:
    if body is None:
        return b""
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    return json.dumps(body).encode()


def nonce() -> str:
    """A nonce no other request uses."""
    return uuid.uuid4().hex


def call(api, method, path, body=None, *, t=None, secret=SECRET, headers=None, sign=True):
    raw = encode(body)
    all_headers = {"content-type": "application/json"}
    if sign:
        stamp = int(api.clock()) if t is None else t
        all_headers["X-Coordinator-Signature"] = signature.sign(secret, stamp, nonce(), method, path, raw)
    all_headers.update(headers or {})
    status, payload = api.handle(method, path, all_headers, raw)
    check_answer(method, path, status, payload)
    return status, payload


BODY = {
    "session_id": "ses_0123456789abcdef0123456789abcdef",
    "sandbox_id": "sbx_0123456789abcdef0123456789abcdef",
    "coordinator_url": COORDINATOR,
    "sandbox_token": TOKEN,
    "repo": {"owner": "acme", "name": "web", "branch": "main"},
    "resources": {"cpu": 2, "memory_mb": 4096, "disk_mb": 10240, "timeout_s": 3600},
    "network": {"block_network": False, "allowed_hosts": ["api.anthropic.com", "*.npmjs.org"]},
    "env": {},
}


def body(**changes):
    out = copy.deepcopy(BODY)
    for key, value in changes.items():
        if "__" in key:
            outer, inner = key.split("__", 1)
            if value is _DELETE:
                out[outer].pop(inner, None)
            else:
                out[outer][inner] = value
        elif value is _DELETE:
            out.pop(key, None)
        else:
            out[key] = value
    return out


class _Delete:
    pass


_DELETE = DELETE = _Delete()


def only_create(fake_modal):
    created = fake_modal.created()
    assert len(created) == 1, created
    return created[0]
