"""The provider API (PROTOCOL.md section 5) in plain Python: routing, signature, validation, planning.

Nothing here imports `modal`. The Modal calls live behind a *backend* object (see `sandboxes.ModalBackend`)
and the state behind a mapping (a `modal.Dict` in production, a plain `dict` in the tests), so the whole
HTTP behaviour is testable without Modal.

Backend interface (duck-typed):

- ``create_sandbox(plan: SandboxPlan) -> str`` (the Modal sandbox object id)
- ``snapshot_sandbox(provider_id: str) -> str`` (the image object id)
- ``terminate_sandbox(provider_id: str) -> None``
- ``find_sandbox(sandbox_id: str) -> str | None`` (look-up by tag when the state has no record)

Backends raise `ProviderFailure` (or `ApiError`) with messages that are safe to show.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import re
import shlex
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, MutableMapping
from urllib.parse import urlsplit

import builds
from errors import ApiError, ProviderFailure, invalid, scrub  # noqa: F401 - re-exported
from signature import SIGNATURE_HEADER, SignatureError, verify

log = logging.getLogger("provider_api")

DEFAULT_APP_NAME = "session-coordinator-sandboxes"
DEFAULT_BASE_IMAGE_NAME = "session-coordinator-sandbox"
DEFAULT_MODEL_KEYS_SECRET = "session-coordinator-model-keys"
DEFAULT_BRIDGE_COMMAND = ["bridge", "run", "--agent", "opencode", "--workspace", "/workspace"]
ENTRY_SCRIPT = "sandbox-entry"
WORKSPACE_DIR = "/workspace"
MEMORY_DIR = "/memory"

# Set by the provider for the bridge and the entry script; a request's `env` can never override them.
RESERVED_ENV = frozenset(
    {
        "COORDINATOR_URL",
        "SESSION_ID",
        "SANDBOX_ID",
        "SANDBOX_TOKEN",
        "REPO_OWNER",
        "REPO_NAME",
        "REPO_BRANCH",
        "REPO_CLONE_URL",
        "WORKSPACE",
        "WORKSPACE_MODE",
        "MEMORY_DIR",
    }
)

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
OBJECT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
REPO_PART_RE = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
BRANCH_RE = re.compile(r"^[A-Za-z0-9_./+-]{1,255}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
DOMAIN_RE = re.compile(
    r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
)

MAX_ENV_VALUE = 32 * 1024
MAX_ENV_ENTRIES = 100
MAX_ALLOWED_HOSTS = 100


# ---------------------------------------------------------------------------------------------------
# Configuration


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


# ---------------------------------------------------------------------------------------------------
# Validation


def _require(obj: Mapping, key: str, where: str = "") -> Any:
    if key not in obj or obj[key] is None:
        raise invalid(f"{where}{key} is required")
    return obj[key]


def _string(obj: Mapping, key: str, where: str = "", *, pattern=None, max_len=4096, hint="") -> str:
    value = _require(obj, key, where)
    if not isinstance(value, str) or not value:
        raise invalid(f"{where}{key} must be a non-empty string")
    if len(value) > max_len:
        raise invalid(f"{where}{key} must be at most {max_len} characters")
    if pattern is not None and not pattern.match(value):
        raise invalid(f"{where}{key} {hint or 'has an invalid format'}")
    return value


def _optional_string(obj: Mapping, key: str, where: str = "", **kw) -> str | None:
    if obj.get(key) is None:
        return None
    return _string(obj, key, where, **kw)


def _object(obj: Mapping, key: str, where: str = "", *, required=True) -> dict:
    value = obj.get(key)
    if value is None:
        if required:
            raise invalid(f"{where}{key} is required")
        return {}
    if not isinstance(value, dict):
        raise invalid(f"{where}{key} must be an object")
    return value


def _number(obj: Mapping, key: str, where: str, lo, hi, *, integer: bool):
    value = _require(obj, key, where)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid(f"{where}{key} must be a number")
    if integer:
        if isinstance(value, float):
            if not value.is_integer():
                raise invalid(f"{where}{key} must be a whole number")
            value = int(value)
    else:
        value = float(value)
    if not lo <= value <= hi:
        raise invalid(f"{where}{key} must be between {lo} and {hi}")
    return value


@dataclass(frozen=True)
class RepoRef:
    owner: str
    name: str
    branch: str
    clone_url: str | None = None

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    def effective_clone_url(self) -> str:
        return self.clone_url or f"https://github.com/{self.owner}/{self.name}.git"

    def clone_host(self) -> str:
        return (urlsplit(self.effective_clone_url()).hostname or "github.com").lower()

    def to_dict(self) -> dict:
        out = {"owner": self.owner, "name": self.name, "branch": self.branch}
        if self.clone_url:
            out["clone_url"] = self.clone_url
        return out


def parse_repo(value: Any, where: str = "repo.") -> RepoRef:
    if not isinstance(value, dict):
        raise invalid(f"{where.rstrip('.')} must be an object")
    owner = _string(value, "owner", where, pattern=REPO_PART_RE, max_len=100, hint="must contain only letters, digits, '-', '_' and '.'")
    name = _string(value, "name", where, pattern=REPO_PART_RE, max_len=100, hint="must contain only letters, digits, '-', '_' and '.'")
    if name in (".", "..") or owner in (".", ".."):
        raise invalid(f"{where}owner and {where}name must be real names")
    branch = _string(value, "branch", where, pattern=BRANCH_RE, max_len=255, hint="is not a valid branch name")
    if branch.startswith(("-", "/")) or ".." in branch or branch.endswith((".lock", "/", ".")) or "//" in branch:
        raise invalid(f"{where}branch is not a valid branch name")
    clone_url = _optional_string(value, "clone_url", where, max_len=2048)
    if clone_url is not None:
        try:
            parts = urlsplit(clone_url)
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise invalid(f"{where}clone_url is not a valid URL") from None
        if parts.scheme != "https" or not parts.hostname:
            raise invalid(f"{where}clone_url must be an https URL")
        if parts.username or parts.password:
            raise invalid(f"{where}clone_url must not contain credentials; pass a token in env instead")
        if parts.query or parts.fragment:
            raise invalid(f"{where}clone_url must not have a query or fragment")
    return RepoRef(owner, name, branch, clone_url)


def _parse_host(entry: Any, where: str) -> str:
    if not isinstance(entry, str) or not entry.strip():
        raise invalid(f"{where} must be a non-empty string")
    host = entry.strip().lower()
    if host == "*":
        return host
    try:
        ipaddress.ip_network(host, strict=False)
        return host
    except ValueError:
        pass
    if len(host) > 253 or not DOMAIN_RE.match(host):
        raise invalid(f"{where} must be a host name, *.domain, an IP address or a CIDR range")
    return host


@dataclass
class CreateRequest:
    session_id: str
    sandbox_id: str
    coordinator_url: str
    coordinator_origin: str
    coordinator_host: str
    sandbox_token: str = field(repr=False)
    repo: RepoRef
    image_id: str | None
    snapshot_id: str | None
    cpu: float
    memory_mb: int
    disk_mb: int
    timeout_s: int
    block_network: bool
    allowed_hosts: list
    env: dict = field(repr=False)


def parse_create(body: dict, config: Config) -> CreateRequest:
    session_id = _string(body, "session_id", pattern=ID_RE, max_len=128, hint="must be 1-128 letters, digits, '_', '-' or '.'")
    sandbox_id = _string(body, "sandbox_id", pattern=ID_RE, max_len=128, hint="must be 1-128 letters, digits, '_', '-' or '.'")

    coordinator_url = _string(body, "coordinator_url", max_len=2048)
    origin = normalize_origin(coordinator_url)
    parts = urlsplit(coordinator_url)
    if origin is None:
        raise invalid("coordinator_url must be an http(s) URL")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise invalid("coordinator_url must not contain credentials, a query or a fragment")

    token = _require(body, "sandbox_token")
    if not isinstance(token, str) or not token:
        raise invalid("sandbox_token must be a non-empty string")
    if len(token) > 4096 or any(ord(c) < 0x21 or ord(c) > 0x7E for c in token):
        raise invalid("sandbox_token must be at most 4096 printable ASCII characters")

    repo = parse_repo(_require(body, "repo"))
    image_id = _optional_string(body, "image_id", pattern=OBJECT_ID_RE, max_len=128, hint="is not a valid image id")
    snapshot_id = _optional_string(body, "snapshot_id", pattern=OBJECT_ID_RE, max_len=128, hint="is not a valid snapshot id")

    res = _object(body, "resources")
    cpu = _number(res, "cpu", "resources.", 0.125, config.max_cpu, integer=False)
    memory_mb = _number(res, "memory_mb", "resources.", 128, config.max_memory_mb, integer=True)
    disk_mb = _number(res, "disk_mb", "resources.", 0, 10 * 1024 * 1024, integer=True) if "disk_mb" in res else 0
    timeout_s = _number(res, "timeout_s", "resources.", 60, config.max_timeout_s, integer=True)

    net = _object(body, "network")
    block = _require(net, "block_network", "network.")
    if not isinstance(block, bool):
        raise invalid("network.block_network must be true or false")
    hosts_raw = net.get("allowed_hosts") or []
    if not isinstance(hosts_raw, list):
        raise invalid("network.allowed_hosts must be a list of host names")
    if len(hosts_raw) > MAX_ALLOWED_HOSTS:
        raise invalid(f"network.allowed_hosts must have at most {MAX_ALLOWED_HOSTS} entries")
    hosts = [_parse_host(h, f"network.allowed_hosts[{i}]") for i, h in enumerate(hosts_raw)]

    env_raw = _object(body, "env", required=False)
    if len(env_raw) > MAX_ENV_ENTRIES:
        raise invalid(f"env must have at most {MAX_ENV_ENTRIES} entries")
    env = {}
    for name, value in env_raw.items():
        if not ENV_NAME_RE.match(name):
            raise invalid(f"env name {name[:64]!r} is not a valid environment variable name")
        if not isinstance(value, str):
            raise invalid(f"env.{name} must be a string")
        if len(value) > MAX_ENV_VALUE or "\x00" in value:
            raise invalid(f"env.{name} must be at most {MAX_ENV_VALUE} characters without NUL")
        env[name] = value

    return CreateRequest(
        session_id=session_id,
        sandbox_id=sandbox_id,
        coordinator_url=coordinator_url.rstrip("/"),
        coordinator_origin=origin,
        coordinator_host=(parts.hostname or "").lower(),
        sandbox_token=token,
        repo=repo,
        image_id=image_id,
        snapshot_id=snapshot_id,
        cpu=cpu,
        memory_mb=memory_mb,
        disk_mb=disk_mb,
        timeout_s=timeout_s,
        block_network=block,
        allowed_hosts=hosts,
        env=env,
    )


# ---------------------------------------------------------------------------------------------------
# Planning: what to ask Modal for (pure)


def volume_name(owner: str, name: str) -> str:
    """The per-repo memory Volume: ``agent-memory-<owner>--<name>``, a valid Modal object name (≤ 64).

    GitHub owners cannot contain ``--``, so the separator keeps different repos apart; over-long names
    are cut and suffixed with a hash of the full name.
    """
    import hashlib

    def clean(part: str) -> str:
        return re.sub(r"[^a-z0-9_.-]", "-", part.lower())

    full = f"agent-memory-{clean(owner)}--{clean(name)}"
    if len(full) <= 64:
        return full
    digest = hashlib.sha256(f"{owner}/{name}".lower().encode()).hexdigest()[:8]
    return f"{full[:55]}-{digest}"


def network_policy(
    block_network: bool, allowed_hosts: Iterable[str], required_hosts: Iterable[str], extra_hosts: Iterable[str]
) -> tuple[list | None, list | None]:
    """(outbound_domain_allowlist, outbound_cidr_allowlist) for `modal.Sandbox.create`.

    The required hosts (the coordinator, the git host) are always reachable: the bridge must dial the
    coordinator and the workspace must be cloned. ``block_network`` allows nothing else; otherwise the
    request's hosts and the provider's extra hosts are added, and ``*`` among them means unrestricted
    (both None).
    """
    hosts = list(required_hosts)
    if not block_network:
        wanted = list(allowed_hosts) + list(extra_hosts)
        if "*" in wanted:
            return None, None
        hosts += wanted
    domains: list[str] = []
    cidrs: list[str] = []
    for host in hosts:
        host = host.strip().lower().strip("[]")
        if not host:
            continue
        try:
            net = ipaddress.ip_network(host, strict=False)
            if str(net) not in cidrs:
                cidrs.append(str(net))
            continue
        except ValueError:
            pass
        if host not in domains:
            domains.append(host)
    return (domains or None), (cidrs or None)


@dataclass
class SandboxPlan:
    """Everything `ModalBackend.create_sandbox` needs, computed without Modal."""

    sandbox_id: str
    session_id: str
    command: list
    env: dict = field(repr=False)
    secret_names: list
    tags: dict
    image_kind: str  # "snapshot" | "image" | "base"
    image_ref: str  # an image object id, or the published base image's name
    workspace_mode: str  # "restore" | "image" | "clone"
    cpu: float
    memory_mb: int
    timeout_s: int
    outbound_domain_allowlist: list | None
    outbound_cidr_allowlist: list | None
    volume_name: str
    memory_path: str = MEMORY_DIR
    dropped_env: list = field(default_factory=list)
    secret_values: list = field(default_factory=list, repr=False)


def plan_sandbox(req: CreateRequest, config: Config, repo_image: dict | None = None) -> SandboxPlan:
    if req.snapshot_id:
        image_kind, image_ref, mode = "snapshot", req.snapshot_id, "restore"
    elif req.image_id:
        image_kind, image_ref, mode = "image", req.image_id, "image"
    elif repo_image and repo_image.get("image_id"):
        image_kind, image_ref, mode = "image", repo_image["image_id"], "image"
    else:
        image_kind, image_ref, mode = "base", config.base_image_name, "clone"

    passed, dropped = {}, []
    for name, value in sorted(req.env.items()):
        if name in config.env_allowlist and name not in RESERVED_ENV:
            passed[name] = value
        else:
            dropped.append(name)

    env = dict(passed)
    env.update(
        {
            "COORDINATOR_URL": req.coordinator_url,
            "SESSION_ID": req.session_id,
            "SANDBOX_ID": req.sandbox_id,
            "SANDBOX_TOKEN": req.sandbox_token,
            "REPO_OWNER": req.repo.owner,
            "REPO_NAME": req.repo.name,
            "REPO_BRANCH": req.repo.branch,
            "REPO_CLONE_URL": req.repo.effective_clone_url(),
            "WORKSPACE": WORKSPACE_DIR,
            "WORKSPACE_MODE": mode,
            "MEMORY_DIR": MEMORY_DIR,
        }
    )
    domains, cidrs = network_policy(
        req.block_network,
        req.allowed_hosts,
        [req.coordinator_host, req.repo.clone_host()],
        config.extra_allowed_hosts,
    )
    return SandboxPlan(
        sandbox_id=req.sandbox_id,
        session_id=req.session_id,
        command=[ENTRY_SCRIPT, *config.bridge_command],
        env=env,
        secret_names=[config.model_keys_secret] if config.model_keys_secret else [],
        tags={
            "role": "agent",
            "session_id": req.session_id,
            "sandbox_id": req.sandbox_id,
            "repo": req.repo.full_name,
        },
        image_kind=image_kind,
        image_ref=image_ref,
        workspace_mode=mode,
        cpu=req.cpu,
        memory_mb=req.memory_mb,
        timeout_s=req.timeout_s,
        outbound_domain_allowlist=domains,
        outbound_cidr_allowlist=cidrs,
        volume_name=volume_name(req.repo.owner, req.repo.name),
        dropped_env=dropped,
        secret_values=[req.sandbox_token, *passed.values()],
    )


# ---------------------------------------------------------------------------------------------------
# State


class StateStore:
    """Key/value state on a mapping (`modal.Dict` or `dict`); failures become `ProviderFailure`."""

    def __init__(self, mapping: MutableMapping):
        self.mapping = mapping

    def get(self, key: str) -> Any:
        try:
            return self.mapping.get(key)
        except Exception as exc:  # noqa: BLE001 - a Modal Dict error
            raise ProviderFailure(f"state store read failed ({type(exc).__name__})") from None

    def put(self, key: str, value: Any) -> None:
        try:
            self.mapping[key] = value
        except Exception as exc:  # noqa: BLE001
            raise ProviderFailure(f"state store write failed ({type(exc).__name__})") from None


def sandbox_key(sandbox_id: str) -> str:
    return f"sandbox:{sandbox_id}"


def iso_utc(ms: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


# ---------------------------------------------------------------------------------------------------
# The API


SANDBOX_PATH = re.compile(r"^/sandboxes/([^/]+)$")
SNAPSHOT_PATH = re.compile(r"^/sandboxes/([^/]+)/snapshot$")
IMAGE_PATH = re.compile(r"^/images/([^/]+)$")


class ProviderAPI:
    def __init__(
        self,
        config: Config,
        backend: Any,
        state: MutableMapping,
        spawn_build: Callable[[str, dict, bool], Any] | None = None,
        clock: Callable[[], float] | None = None,
    ):
        self.config = config
        self.backend = backend
        self.store = StateStore(state)
        self.spawn_build = spawn_build
        self.clock = clock or (lambda: time.time() * 1000)
        self.config_error: str | None = None

    @classmethod
    def from_env(cls, backend: Any, state: MutableMapping, **kw) -> "ProviderAPI":
        """An API configured from the environment; a bad setting is reported (500), not a crash."""
        try:
            return cls(Config.from_env(), backend, state, **kw)
        except ValueError as err:
            api = cls(Config(provider_secret=None), backend, state, **kw)
            api.config_error = str(err)
            return api

    # -- entry point ------------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> tuple[int, dict]:
        """Answer one request: (status, JSON body). Never raises."""
        method = method.upper()
        path = "/" + path.strip("/") if path != "/" else path
        try:
            if path == "/health":
                if method != "GET":
                    raise ApiError(405, "method_not_allowed", "use GET")
                return self.health()
            if self.config_error:
                raise ApiError(500, "internal", f"the provider is misconfigured: {self.config_error}")
            if len(body) > self.config.max_body_bytes:
                raise ApiError(413, "too_large", f"the body is over {self.config.max_body_bytes} bytes")
            self.check_signature(headers, body)
            return self.route(method, path, body)
        except ApiError as err:
            if err.status >= 500:
                log.warning("%s %s -> %s %s", method, path, err.status, err.code)
            # Last line of defence: the provider's own secret never leaves in a message.
            message = scrub(err.message, [self.config.provider_secret or ""])
            return err.status, ApiError(err.status, err.code, message).body()
        except Exception as exc:  # noqa: BLE001 - never leak a traceback or a value
            log.error("%s %s -> 500 (%s)", method, path, type(exc).__name__)
            return 500, ApiError(500, "internal", "internal error").body()

    def check_signature(self, headers: Mapping[str, str], body: bytes) -> None:
        if not self.config.provider_secret:
            raise ApiError(500, "internal", "the provider is not configured (PROVIDER_SECRET is not set)")
        header = None
        for name, value in headers.items():
            if name.lower() == SIGNATURE_HEADER.lower():
                header = value
        try:
            verify(self.config.provider_secret, header, body, int(self.clock()))
        except SignatureError as err:
            raise ApiError(401, "unauthorized", str(err)) from None

    def route(self, method: str, path: str, body: bytes) -> tuple[int, dict]:
        routes: list[tuple[re.Pattern | str, dict]] = [
            ("/sandboxes", {"POST": lambda: self.create_sandbox(body)}),
            (SNAPSHOT_PATH, {"POST": lambda sid: self.snapshot_sandbox(sid)}),
            (SANDBOX_PATH, {"DELETE": lambda sid: self.delete_sandbox(sid)}),
            ("/images", {"POST": lambda: self.start_image_build(body)}),
            (IMAGE_PATH, {"GET": lambda bid: self.image_build_status(bid)}),
        ]
        for pattern, handlers in routes:
            if isinstance(pattern, str):
                if path != pattern:
                    continue
                args: tuple = ()
            else:
                match = pattern.match(path)
                if not match:
                    continue
                args = match.groups()
            handler = handlers.get(method)
            if handler is None:
                raise ApiError(405, "method_not_allowed", f"use {', '.join(handlers)}")
            return handler(*args)
        raise ApiError(404, "not_found", "no such endpoint")

    # -- handlers ---------------------------------------------------------------------------------

    def health(self) -> tuple[int, dict]:
        problems = [self.config_error] if self.config_error else self.config.problems()
        out = {"ok": not problems, "provider": "modal", "app": self.config.app_name}
        if problems:
            out["problems"] = problems
        return 200, out

    def _json_object(self, body: bytes) -> dict:
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise invalid("the body must be a JSON object")
        return data

    def create_sandbox(self, body: bytes) -> tuple[int, dict]:
        req = parse_create(self._json_object(body), self.config)
        if req.coordinator_origin not in self.config.coordinator_allowlist:
            raise ApiError(403, "forbidden", f"coordinator_url {req.coordinator_origin} is not in COORDINATOR_ALLOWLIST")

        existing = self.store.get(sandbox_key(req.sandbox_id))
        if existing:
            if existing.get("session_id") != req.session_id:
                raise ApiError(409, "conflict", "sandbox_id is already used by another session")
            # A retried create: answer with the sandbox that was made the first time.
            return 201, {"sandbox_id": req.sandbox_id, "provider_id": existing["provider_id"]}

        repo_image = None
        if not req.snapshot_id and not req.image_id:
            repo_image = builds.latest_image(self.store, req.repo.owner, req.repo.name, req.repo.branch)
        plan = plan_sandbox(req, self.config, repo_image)
        try:
            provider_id = self.backend.create_sandbox(plan)
        except ProviderFailure as failure:
            if repo_image is None or not getattr(failure, "missing", False):
                raise
            # The recorded repo image may be gone (snapshots expire): clone from the base image instead,
            # and forget the recorded image once that worked.
            log.warning("creating from the repo image of %s failed; trying the base image", req.repo.full_name)
            plan = plan_sandbox(req, self.config, None)
            provider_id = self.backend.create_sandbox(plan)
            builds.forget_latest_image(self.store, req.repo.owner, req.repo.name, req.repo.branch)

        self.store.put(
            sandbox_key(req.sandbox_id),
            {
                "provider_id": provider_id,
                "session_id": req.session_id,
                "repo": req.repo.full_name,
                "image_kind": plan.image_kind,
                "created_at": iso_utc(self.clock()),
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
        return 201, out

    def _find(self, sandbox_id: str) -> tuple[str, dict]:
        if not ID_RE.match(sandbox_id):
            raise ApiError(404, "not_found", "no such sandbox")
        record = self.store.get(sandbox_key(sandbox_id))
        if record:
            return record["provider_id"], record
        provider_id = self.backend.find_sandbox(sandbox_id)
        if not provider_id:
            raise ApiError(404, "not_found", "no such sandbox")
        return provider_id, {"provider_id": provider_id}

    def snapshot_sandbox(self, sandbox_id: str) -> tuple[int, dict]:
        provider_id, record = self._find(sandbox_id)
        if record.get("ended_at"):
            raise ApiError(409, "conflict", "the sandbox has ended")
        snapshot_id = self.backend.snapshot_sandbox(provider_id)
        record = dict(record, last_snapshot_id=snapshot_id, last_snapshot_at=iso_utc(self.clock()))
        self.store.put(sandbox_key(sandbox_id), record)
        log.info("snapshot of sandbox %s: %s", sandbox_id, snapshot_id)
        return 200, {"snapshot_id": snapshot_id}

    def delete_sandbox(self, sandbox_id: str) -> tuple[int, dict]:
        provider_id, record = self._find(sandbox_id)
        if not record.get("ended_at"):
            self.backend.terminate_sandbox(provider_id)
            self.store.put(sandbox_key(sandbox_id), dict(record, ended_at=iso_utc(self.clock())))
            log.info("terminated sandbox %s (%s)", sandbox_id, provider_id)
        return 200, {}

    def start_image_build(self, body: bytes) -> tuple[int, dict]:
        data = self._json_object(body)
        repo = parse_repo(_require(data, "repo"))
        if self.spawn_build is None:
            raise ApiError(500, "internal", "image builds are not available here")
        build_id = builds.start_build(
            self.store, self.spawn_build, repo.to_dict(), self.clock, timeout_s=self.config.build_timeout_s
        )
        return 202, {"build_id": build_id}

    def image_build_status(self, build_id: str) -> tuple[int, dict]:
        if not builds.BUILD_ID_RE.match(build_id):
            raise ApiError(404, "not_found", "no such build")
        record = builds.build_status(self.store, build_id, self.clock, timeout_s=self.config.build_timeout_s)
        if record is None:
            raise ApiError(404, "not_found", "no such build")
        out = {"status": record["status"]}
        for key in ("image_id", "commit", "built_at", "error"):
            if record.get(key):
                out[key] = record[key]
        return 200, out


# ---------------------------------------------------------------------------------------------------
# ASGI


def _json_response(status: int, payload: dict) -> tuple[int, list, bytes]:
    body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return status, headers, body


def make_asgi(get_api: Callable[[], ProviderAPI]):
    """A minimal ASGI app around `ProviderAPI.handle` (run in a thread: the Modal SDK calls block)."""

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        api = get_api()
        limit = api.config.max_body_bytes
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        status = None
        try:
            declared = int(headers.get("content-length", "0") or 0)
        except ValueError:
            declared = 0
        chunks, size = [], 0
        if declared > limit:
            status, payload = 413, ApiError(413, "too_large", f"the body is over {limit} bytes").body()
        else:
            more = True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    status, payload = 413, ApiError(413, "too_large", f"the body is over {limit} bytes").body()
                    break
                chunks.append(chunk)
                more = message.get("more_body", False)
        if status is None:
            status, payload = await asyncio.to_thread(
                api.handle, scope["method"], scope["path"], headers, b"".join(chunks)
            )
        code, out_headers, out_body = _json_response(status, payload)
        await send({"type": "http.response.start", "status": code, "headers": out_headers})
        await send({"type": "http.response.body", "body": out_body})

    return app
