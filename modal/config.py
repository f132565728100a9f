"""The app's settings, read from the environment of its functions (see README.md, "Settings")."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from typing import Mapping
from urllib.parse import urlsplit

DEFAULT_APP_NAME = "session-coordinator-sandboxes"
DEFAULT_BASE_IMAGE_NAME = "session-coordinator-sandbox"
DEFAULT_MODEL_KEYS_SECRET = "session-coordinator-model-keys"
DEFAULT_BRIDGE_COMMAND = ["bridge", "run", "--agent", "opencode", "--workspace", "/workspace"]


def _csv(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def normalize_origin(url: str) -> str | None:
    """``scheme://host[:port]`` in lower case with the default port dropped, or None if not an http(s) URL."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    default = 443 if parts.scheme == "https" else 80
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


@dataclass
class Config:
    app_name: str = DEFAULT_APP_NAME
    provider_secret: str | None = None
    # The secret before a rotation, accepted too until the coordinator signs with the new one.
    provider_secret_previous: str | None = None
    coordinator_allowlist: frozenset = frozenset()
    env_allowlist: frozenset = frozenset()
    extra_allowed_hosts: tuple = ()
    base_image_name: str = DEFAULT_BASE_IMAGE_NAME
    model_keys_secret: str | None = DEFAULT_MODEL_KEYS_SECRET
    build_secret: str | None = None
    bridge_command: tuple = tuple(DEFAULT_BRIDGE_COMMAND)
    max_body_bytes: int = 256 * 1024
    max_cpu: float = 16.0
    max_memory_mb: int = 65536
    max_timeout_s: int = 24 * 3600
    build_timeout_s: int = 1800

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Config":
        env = os.environ if environ is None else environ

        def number(name: str, default, kind=int):
            raw = (env.get(name) or "").strip()
            if not raw:
                return default
            try:
                return kind(raw)
            except ValueError:
                raise ValueError(f"{name} must be a number") from None

        origins = set()
        for entry in _csv(env.get("COORDINATOR_ALLOWLIST")):
            origin = normalize_origin(entry)
            if origin is None:
                raise ValueError("COORDINATOR_ALLOWLIST entries must be http(s) origins")
            origins.add(origin)
        command = shlex.split(env.get("BRIDGE_COMMAND") or "") or list(DEFAULT_BRIDGE_COMMAND)
        model_keys = env.get("MODEL_KEYS_SECRET")
        return cls(
            app_name=(env.get("MODAL_APP_NAME") or DEFAULT_APP_NAME).strip(),
            provider_secret=env.get("PROVIDER_SECRET") or None,
            provider_secret_previous=env.get("PROVIDER_SECRET_PREVIOUS") or None,
            coordinator_allowlist=frozenset(origins),
            env_allowlist=frozenset(_csv(env.get("SANDBOX_ENV_ALLOWLIST"))),
            extra_allowed_hosts=tuple(h.lower() for h in _csv(env.get("SANDBOX_EXTRA_ALLOWED_HOSTS"))),
            base_image_name=(env.get("BASE_IMAGE_NAME") or DEFAULT_BASE_IMAGE_NAME).strip(),
            # Unset: the default secret name; set to "" (or "none"): no model-keys secret at all.
            model_keys_secret=DEFAULT_MODEL_KEYS_SECRET
            if model_keys is None
            else (None if model_keys.strip() in ("", "none") else model_keys.strip()),
            build_secret=(env.get("IMAGE_BUILD_SECRET") or "").strip() or None,
            bridge_command=tuple(command),
            max_body_bytes=number("MAX_BODY_BYTES", 256 * 1024),
            max_cpu=number("MAX_CPU", 16.0, float),
            max_memory_mb=number("MAX_MEMORY_MB", 65536),
            max_timeout_s=number("MAX_TIMEOUT_S", 24 * 3600),
            build_timeout_s=number("IMAGE_BUILD_TIMEOUT_S", 1800),
        )

    def problems(self) -> list[str]:
        found = []
        if not self.provider_secret:
            found.append("PROVIDER_SECRET is not set")
        if not self.coordinator_allowlist:
            found.append("COORDINATOR_ALLOWLIST is empty")
        return found
