"""Shared helpers for the provider API tests (a signed-request client and a valid create body)."""

from __future__ import annotations

import copy
import json

import signature
from provider_api import Config, ProviderAPI
from sandboxes import ModalBackend

SECRET = "test-provider-secret-0123456789"
COORDINATOR = "https://coord.example.com"
NOW_MS = 1_800_000_000_000
TOKEN = "sbxtok_5f2d8c1e9a7b4e3d2c1b0a99"


class Clock:
    def __init__(self, now_ms: float = NOW_MS):
        self.now = now_ms

    def __call__(self) -> float:
        return self.now


def make_api(fake_modal, *, state=None, clock=None, spawn=None, **config):
    options = dict(
        provider_secret=SECRET,
        coordinator_allowlist=frozenset({COORDINATOR}),
        model_keys_secret="session-coordinator-model-keys",
    )
    options.update(config)
    spawned = []

    def default_spawn(build_id, repo, set_default):
        spawned.append((build_id, repo, set_default))

    api = ProviderAPI(
        Config(**options),
        ModalBackend(fake_modal, app="the-app"),
        {} if state is None else state,
        spawn_build=spawn or default_spawn,
        clock=clock or Clock(),
    )
    api.spawned = spawned
    return api


def encode(body) -> bytes:
    if body is None:
        return b""
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    return json.dumps(body).encode()


def call(api, method, path, body=None, *, t=None, secret=SECRET, headers=None, sign=True):
    raw = encode(body)
    all_headers = {"content-type": "application/json"}
    if sign:
        stamp = int(api.clock()) if t is None else t
        all_headers["X-Coordinator-Signature"] = signature.sign(secret, stamp, raw)
    all_headers.update(headers or {})
    return api.handle(method, path, all_headers, raw)


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
