"""app.py wiring against the fake `modal`: functions (no schedule), secrets, a build and the ASGI app."""

import asyncio
import importlib
import json
import sys
import uuid
from pathlib import Path

import pytest

import signature
from conftest import MODAL_DIR, FakeProcess
from provider_helpers import BODY, COORDINATOR, SECRET

REPOS = json.dumps(
    [
        {"name": "acme/web", "description": "The web app", "hints": [], "default_branch": "main"},
        {"name": "acme/api", "default_branch": "trunk"},
    ]
)


@pytest.fixture
def app_module(fake_modal, monkeypatch):
    monkeypatch.setenv("PROVIDER_SECRET", SECRET)
    monkeypatch.setenv("COORDINATOR_ALLOWLIST", COORDINATOR)
    monkeypatch.setenv("REPOS", REPOS)
    for name in ("PROXY_AUTH", "MODAL_APP_NAME", "MODEL_KEYS_SECRET", "SANDBOX_ENV_ALLOWLIST"):
        monkeypatch.delenv(name, raising=False)

    def load(**env):
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        sys.modules.pop("app", None)
        return importlib.import_module("app")

    yield load
    sys.modules.pop("app", None)


def asgi_request(asgi, method, path, body=b"", headers=None):
    """Drive an ASGI app once; returns (status, parsed JSON)."""
    sent = []
    chunks = [body[:10], body[10:]] if len(body) > 10 else [body]
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "https",
        "server": ("provider.example", 443),
        "client": ("203.0.113.9", 40000),
        "root_path": "",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(asgi(scope, receive, send))
    start, payload = sent[0], sent[1]
    assert dict(start["headers"])[b"content-type"] == b"application/json"
    return start["status"], json.loads(payload["body"])


def signed_headers(raw: bytes, now_ms: int, method: str = "POST", path: str = "/sandboxes") -> dict:
    header = signature.sign(SECRET, now_ms, uuid.uuid4().hex, method, path, raw)
    return {"X-Coordinator-Signature": header, "content-type": "application/json"}


def test_functions_schedule_secrets_and_endpoint(app_module, fake_modal):
    app = app_module()
    assert app.app.name == "session-coordinator-sandboxes"
    functions = app.app.functions
    # The schedule is the coordinator's: no function here runs on a cron.
    assert set(functions) == {"api", "build_repo_image"}
    for fn in functions.values():
        assert "schedule" not in fn.options
        assert fn.options["secrets"] == [("secret", "session-coordinator-provider")]
    assert functions["api"].fn.asgi_options == {"requires_proxy_auth": False}
    assert functions["api"].fn.concurrent_options["max_inputs"] > 1
    # The nonces of signatures live in one container's memory.
    assert functions["api"].options["max_containers"] == 1
    assert ("Dict.from_name", "session-coordinator-sandboxes-state", True) in fake_modal.calls
    steps = functions["api"].options["image"].steps
    # git for POST /heads (git ls-remote).
    assert [step[0] for step in steps[:3]] == ["debian_slim", "apt_install", "pip_install_from_requirements"]
    assert steps[1][1] == ("git",)
    assert Path(steps[2][1][0]) == MODAL_DIR / "requirements.txt"
    shipped = {Path(step[1][0]).name: step[1][1] for step in steps if step[0] == "add_local_file"}
    assert shipped == {name: f"/root/{name}" for name in app.SHIPPED_FILES}


def test_the_image_ships_every_module_the_functions_import_and_the_schema(app_module):
    # Everything in modal/ but the deploy-time scripts: app.py is Modal's own entry point and
    # sandbox_image.py builds the sandbox image from a workstation.
    modules = {path.name for path in MODAL_DIR.glob("*.py")} - {"app.py", "sandbox_image.py"}
    assert set(app_module().SHIPPED_FILES) == modules | {"provider.schema.json"}


def test_proxy_auth_and_app_name_are_deploy_settings(app_module):
    app = app_module(PROXY_AUTH="1", MODAL_APP_NAME="other-app")
    assert app.app.name == "other-app"
    assert app.app.functions["api"].fn.asgi_options == {"requires_proxy_auth": True}


def test_a_build_asked_through_the_endpoint_runs_at_its_commit_and_serves_new_sandboxes(app_module, fake_modal):
    app = app_module()
    asgi = app.api()
    now = int(__import__("time").time() * 1000)
    status, health = asgi_request(asgi, "GET", "/health")
    assert status == 200 and health["runtime_version"] == "session-coordinator-sandbox"

    # The coordinator's cron found the head and asks for an image of it.
    commit = "cafe" * 10
    raw = json.dumps({"repo": {"owner": "acme", "name": "web", "branch": "main"}, "commit": commit}).encode()
    status, started = asgi_request(asgi, "POST", "/images", raw, signed_headers(raw, now, "POST", "/images"))
    assert status == 202
    build_id = started["build_id"]
    spawned = [(name, args) for name, args, _ in fake_modal.spawned]
    assert spawned == [("build_repo_image", (build_id, {"owner": "acme", "name": "web", "branch": "main", "commit": commit}, False))]

    # Run the spawned build as Modal would.
    fake_modal.exec_results = [(("git",), FakeProcess(0, stdout=commit + "\n"))]
    record = app.build_repo_image(*fake_modal.spawned[0][1])
    assert record["status"] == "ready" and record["commit"] == commit
    (_, build_kwargs), = fake_modal.created()
    assert build_kwargs["env"]["REPO_COMMIT"] == commit
    state = fake_modal.dicts["session-coordinator-sandboxes-state"]
    web_image = state["image:acme/web@main"]["image_id"]
    assert web_image.startswith("im-snap")

    path = f"/images/{build_id}"
    status, payload = asgi_request(asgi, "GET", path, b"", signed_headers(b"", now, "GET", path))
    assert status == 200 and payload["status"] == "ready" and payload["image_id"] == web_image

    # The coordinator sends the image it recorded; the sandbox starts from it.
    raw = json.dumps(dict(BODY, image_id=web_image)).encode()
    status, payload = asgi_request(asgi, "POST", "/sandboxes", raw, signed_headers(raw, now))
    assert status == 201 and payload["image_id"] == web_image
    args, kwargs = fake_modal.created()[-1]
    assert kwargs["image"].object_id == web_image and kwargs["app"] is app.app
    assert kwargs["secrets"] == [("secret", "session-coordinator-model-keys")]


def test_asgi_refuses_oversized_bodies_before_reading_them(app_module):
    app = app_module(MAX_BODY_BYTES="100")
    asgi = app.api()
    raw = json.dumps(BODY).encode()
    status, payload = asgi_request(asgi, "POST", "/sandboxes", raw, {"content-length": str(len(raw))})
    assert status == 413 and payload["error"]["code"] == "too_large"
    status, payload = asgi_request(asgi, "POST", "/sandboxes", raw)  # no content-length: counted while reading
    assert status == 413


def test_asgi_lifespan(app_module):
    asgi = app_module().api()
    inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent = []

    async def receive():
        return inbox.pop(0)

    async def send(message):
        sent.append(message["type"])

    asyncio.run(asgi({"type": "lifespan"}, receive, send))
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
