"""The Modal app behind the coordinator's sandbox provider API (PROTOCOL.md section 5).

    modal deploy modal/app.py

Deploys the app ``session-coordinator-sandboxes`` (``MODAL_APP_NAME`` overrides) with

- ``api``: the web endpoint, a FastAPI app behind ``@modal.asgi_app()`` (``https://<workspace>--session-coordinator-sandboxes-api.modal.run``);
- ``build_repo_image``: builds one repo image at a commit (spawned by ``POST /images``).

There is no schedule here: the coordinator's cron looks up each repository's head (GitHub, or
``POST /heads``) and asks for a build when it moved or the runtime changed.

Configuration comes from the Modal secret ``session-coordinator-provider`` (``PROVIDER_SECRET``,
``COORDINATOR_ALLOWLIST``, optional ``SANDBOX_ENV_ALLOWLIST``, …; see README.md). Settings read
while deploying (from the local environment): ``MODAL_APP_NAME``, ``PROVIDER_SECRET_NAME``,
``PROXY_AUTH=1`` (Modal proxy auth on the endpoint), and ``SANDBOX_*``/``BASE_IMAGE_NAME``/
``MODEL_KEYS_SECRET``/``IMAGE_BUILD_SECRET``/``BRIDGE_COMMAND`` which, when set, are baked into the
functions' environment (set each setting in one place only: the secret or the deploy environment).

The sandbox base image is published separately by ``python modal/sandbox_image.py`` (see that file).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import modal

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

APP_NAME = os.environ.get("MODAL_APP_NAME") or "session-coordinator-sandboxes"
PROVIDER_SECRET_NAME = os.environ.get("PROVIDER_SECRET_NAME") or "session-coordinator-provider"
STATE_DICT_NAME = os.environ.get("STATE_DICT_NAME") or f"{APP_NAME}-state"
PROXY_AUTH = (os.environ.get("PROXY_AUTH") or "").strip().lower() in ("1", "true", "yes", "on")

# Non-secret settings that may be given at deploy time instead of in the secret.
_DEPLOY_SETTINGS = (
    "COORDINATOR_ALLOWLIST",
    "SANDBOX_ENV_ALLOWLIST",
    "SANDBOX_EXTRA_ALLOWED_HOSTS",
    "BASE_IMAGE_NAME",
    "MODEL_KEYS_SECRET",
    "IMAGE_BUILD_SECRET",
    "IMAGE_BUILD_TIMEOUT_S",
    "BRIDGE_COMMAND",
    "MAX_CPU",
    "MAX_MEMORY_MB",
    "MAX_TIMEOUT_S",
)
DEPLOY_ENV = {"MODAL_APP_NAME": APP_NAME, "STATE_DICT_NAME": STATE_DICT_NAME}
DEPLOY_ENV.update({name: os.environ[name] for name in _DEPLOY_SETTINGS if name in os.environ})

# The control image runs the web endpoint and the build functions: the packages of requirements.txt
# (FastAPI, jsonschema), the app's modules and the contract's schema, which `validation` reads at import.
# tests/test_app.py checks this list against the modules the app imports.
SHIPPED_FILES = (
    "builds.py",
    "config.py",
    "errors.py",
    "guard.py",
    "heads.py",
    "planning.py",
    "provider_api.py",
    "provisioning.py",
    "sandboxes.py",
    "signature.py",
    "state.py",
    "validation.py",
    "provider.schema.json",
)
# git: `POST /heads` asks the repository's git host with `git ls-remote` (heads.py).
control_image = (
    modal.Image.debian_slim(python_version="3.12")
    .apt_install("git")
    .pip_install_from_requirements(str(HERE / "requirements.txt"))
)
for _name in SHIPPED_FILES:
    control_image = control_image.add_local_file(HERE / _name, f"/root/{_name}")

app = modal.App(APP_NAME)
provider_secret = modal.Secret.from_name(PROVIDER_SECRET_NAME)
state = modal.Dict.from_name(STATE_DICT_NAME, create_if_missing=True)

_FUNCTION_OPTIONS = dict(image=control_image, secrets=[provider_secret], env=DEPLOY_ENV)


def _config():
    from config import Config

    return Config.from_env()


def _backend():
    from sandboxes import ModalBackend

    return ModalBackend(modal, app=app)


def _now_ms() -> float:
    import time

    return time.time() * 1000


def _spawn_build(build_id: str, repo: dict, set_default: bool):
    return build_repo_image.spawn(build_id, repo, set_default)


@app.function(timeout=3600, **_FUNCTION_OPTIONS)
def build_repo_image(build_id: str, repo: dict, set_default: bool = False) -> dict:
    """Clone + install + snapshot one repo; records the result under ``build:<build_id>``."""
    import builds
    from state import StateStore

    config = _config()
    return builds.run_build(
        StateStore(state),
        _backend(),
        build_id,
        repo,
        _now_ms,
        base_image_name=config.base_image_name,
        build_secret=config.build_secret,
        timeout_s=config.build_timeout_s,
        set_default=set_default,
    )


# One container: the signatures' nonces are remembered in its memory, so a replay cannot land on
# another container that never saw them; 32 concurrent inputs are plenty for the coordinator's calls.
@app.function(timeout=600, max_containers=1, **_FUNCTION_OPTIONS)
@modal.concurrent(max_inputs=32)
@modal.asgi_app(requires_proxy_auth=PROXY_AUTH)
def api():
    """The provider API (``GET /health`` unsigned; everything else needs ``X-Coordinator-Signature``)."""
    import logging

    from provider_api import app_from_env

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return app_from_env(_backend(), state, spawn_build=_spawn_build, clock=_now_ms)
