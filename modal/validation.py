"""Request bodies checked against the contract, then typed (PROTOCOL.md section 5).

The contract is ``provider.schema.json``, generated from the Rust types in
``crates/protocol/src/provider.rs`` (regenerate with ``UPDATE_PROVIDER_SCHEMA=1 cargo test -p protocol
provider_schema``). Every body is validated against it with `jsonschema`; what a schema cannot say (a URL's
port, a host that is an IP or a CIDR range, the provider's own maxima) is checked here after it. Both kinds
of refusal are 422 ``invalid_field`` with a message that names the field and quotes no value.

Two choices keep this side as strict as serde on the Rust side: an ``integer`` is an `int` (serde refuses
``1024.0`` for a ``u32``), and ``pattern`` is matched as ECMA-262, as JSON Schema says, with `regress`
(Python's ``$`` would also match before a final newline).
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import urlsplit

import regress
from jsonschema import Draft202012Validator, ValidationError, validators

from config import Config, normalize_origin
from errors import ApiError, invalid

SCHEMA_PATH = Path(__file__).resolve().with_name("provider.schema.json")
SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))

# `*.domain` or a host name, in lower case (host entries are lower-cased first).
DOMAIN_RE = re.compile(r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")


# ---------------------------------------------------------------------------------------------------
# The schema validator


def _is_integer(checker, instance) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


@functools.lru_cache(maxsize=None)
def _regex(pattern: str) -> regress.Regex:
    return regress.Regex(pattern)


def _ecma_pattern(validator, pattern, instance, schema):
    if validator.is_type(instance, "string") and _regex(pattern).find(instance) is None:
        yield ValidationError(f"does not match {pattern!r}")


ContractValidator = validators.extend(
    Draft202012Validator,
    validators={"pattern": _ecma_pattern},
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)


@functools.lru_cache(maxsize=None)
def validator_for(definition: str) -> Draft202012Validator:
    """A validator for one of the schema's ``$defs`` (``CreateSandbox``, ``BuildImage``, ``RepoRef``, …)."""
    if definition not in SCHEMA["$defs"]:
        raise KeyError(definition)
    return ContractValidator({"$defs": SCHEMA["$defs"], "$ref": f"#/$defs/{definition}"})


def property_schema(definition: str, name: str) -> dict:
    return SCHEMA["$defs"][definition]["properties"][name]


def matches(definition: str, name: str, value: str) -> bool:
    """Whether ``value`` matches the pattern of the property ``name`` of ``definition``."""
    return _regex(property_schema(definition, name)["pattern"]).find(value) is not None


# ---------------------------------------------------------------------------------------------------
# Messages


_TYPE_WORDS = {
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "object": "an object",
    "array": "a list",
}
# Which of several errors to report: the shallowest, and there a missing field before a wrong type.
_RANK = {"required": 0, "type": 1}


def _where(path: Iterable) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _number(value) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def message(error: ValidationError, prefix: tuple = ()) -> str:
    """A sentence naming the field. Values are never quoted (one may be a token); an env name may be."""
    path = (*prefix, *error.absolute_path)
    where = _where(path) or "the body"
    kind, expected, schema = error.validator, error.validator_value, error.schema
    # The schema's descriptions (the Rust doc comments) say what a valid value is.
    described = f"must be {schema['description']}" if isinstance(schema, dict) and schema.get("description") else "is not valid"
    if "propertyNames" in error.relative_schema_path:
        return f"{where} name {str(error.instance)[:64]!r} {described}"
    if kind == "required":
        missing = next(name for name in expected if name not in error.instance)
        return f"{_where((*path, missing))} is required"
    if kind == "type":
        kinds = [expected] if isinstance(expected, str) else [k for k in expected if k != "null"]
        return f"{where} must be {' or '.join(_TYPE_WORDS.get(k, k) for k in kinds)}"
    if kind == "minLength":
        return f"{where} must not be empty" if expected == 1 else f"{where} must be at least {expected} characters"
    if kind == "maxLength":
        return f"{where} must be at most {expected} characters"
    if kind in ("minimum", "maximum"):
        low, high = schema.get("minimum"), schema.get("maximum")
        if low is not None and high is not None:
            return f"{where} must be between {_number(low)} and {_number(high)}"
        return f"{where} must be at least {_number(low)}" if kind == "minimum" else f"{where} must be at most {_number(high)}"
    if kind in ("maxItems", "maxProperties"):
        return f"{where} must have at most {expected} entries"
    if kind == "enum":
        return f"{where} must be one of {', '.join(map(str, expected))}"
    return f"{where} {described}"


def check(definition: str, value: Any, prefix: tuple = ()) -> None:
    """Raise a 422 naming the first problem of ``value`` against ``definition``."""
    errors = sorted(
        validator_for(definition).iter_errors(value),
        key=lambda e: (len(e.absolute_path), _RANK.get(e.validator, 2)),
    )
    if errors:
        raise invalid(message(errors[0], prefix))


# ---------------------------------------------------------------------------------------------------
# JSON


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _unique_keys(pairs: list) -> dict:
    out = {}
    for key, value in pairs:
        if key in out:
            raise invalid(f"the body has the key {key[:64]!r} twice")
        out[key] = value
    return out


def parse_json(body: bytes) -> Any:
    """The body as JSON, read as strictly as serde_json reads it: no NaN or Infinity, no lone surrogates."""
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_refuse_constant, object_pairs_hook=_unique_keys)
        json.dumps(data, ensure_ascii=False).encode("utf-8")  # a lone surrogate escape fails here
    except (UnicodeError, ValueError, RecursionError):
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
    return data


# ---------------------------------------------------------------------------------------------------
# Typed requests


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


def _typed_repo(value: dict, where: str) -> RepoRef:
    clone_url = value.get("clone_url")
    if clone_url is not None:
        try:
            urlsplit(clone_url).port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise invalid(f"{where}.clone_url is not a valid URL") from None
    return RepoRef(value["owner"], value["name"], value["branch"], clone_url)


def parse_repo(value: Any, where: str = "repo") -> RepoRef:
    """A repo reference on its own (``REPOS`` entries); ``where`` prefixes the field names in messages."""
    check("RepoRef", value, (where,))
    return _typed_repo(value, where)


def parse_build(body: bytes) -> tuple[RepoRef, str | None]:
    """``POST /images``: the repo and the commit to build (None: the branch's head)."""
    data = parse_json(body)
    check("BuildImage", data)
    return _typed_repo(data["repo"], "repo"), data.get("commit")


def parse_heads(body: bytes) -> RepoRef:
    """``POST /heads``."""
    data = parse_json(body)
    check("HeadLookup", data)
    return _typed_repo(data["repo"], "repo")


def _host(entry: str, where: str) -> str:
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


def _at_most(value, high, name: str):
    """The provider's own maximum for a resource (its minimum is the contract's)."""
    low = property_schema("Resources", name)["minimum"]
    if value > high:
        raise invalid(f"resources.{name} must be between {_number(low)} and {_number(high)}")
    return value


def parse_create(body: bytes, config: Config) -> CreateRequest:
    """``POST /sandboxes``: the schema, then the URL, host and maximum checks it cannot state."""
    data = parse_json(body)
    check("CreateSandbox", data)

    coordinator_url = data["coordinator_url"]
    origin = normalize_origin(coordinator_url)
    if origin is None:
        raise invalid("coordinator_url is not a valid URL")
    return CreateRequest(
        session_id=data["session_id"],
        coordinator_url=coordinator_url.rstrip("/"),
        coordinator_origin=origin,
        coordinator_host=(urlsplit(coordinator_url).hostname or "").lower(),
        sandbox_token=data["sandbox_token"],
        snapshot_id=data.get("snapshot_id"),
        **_sandbox_fields(data, config),
    )


def _sandbox_fields(data: dict, config: Config) -> dict:
    """What a cold and a warm sandbox's bodies share: its id, repo, image, resources (within
    this app's maxima), network and env."""
    resources, network = data["resources"], data["network"]
    hosts = [_host(h, f"network.allowed_hosts[{i}]") for i, h in enumerate(network.get("allowed_hosts", []))]
    return dict(
        sandbox_id=data["sandbox_id"],
        repo=_typed_repo(data["repo"], "repo"),
        image_id=data.get("image_id"),
        cpu=float(_at_most(resources["cpu"], config.max_cpu, "cpu")),
        memory_mb=_at_most(resources["memory_mb"], config.max_memory_mb, "memory_mb"),
        disk_mb=resources["disk_mb"],
        timeout_s=_at_most(resources["timeout_s"], config.max_timeout_s, "timeout_s"),
        block_network=network["block_network"],
        allowed_hosts=hosts,
        env=dict(data.get("env", {})),
    )


@dataclass(frozen=True)
class ClaimRequest:
    """``POST /sandboxes/:id/claim``: a warm sandbox's session, coordinator and token."""

    session_id: str
    coordinator_url: str
    coordinator_origin: str
    sandbox_token: str = field(repr=False)


def parse_warm(body: bytes, config: Config) -> CreateRequest:
    """``POST /warm-sandboxes``: a `CreateRequest` with no session, coordinator or token (empty)."""
    data = parse_json(body)
    check("StartWarmSandbox", data)
    return CreateRequest(
        session_id="",
        coordinator_url="",
        coordinator_origin="",
        coordinator_host="",
        sandbox_token="",
        snapshot_id=None,
        **_sandbox_fields(data, config),
    )


def parse_claim(body: bytes) -> ClaimRequest:
    """``POST /sandboxes/:id/claim``."""
    data = parse_json(body)
    check("ClaimSandbox", data)
    origin = normalize_origin(data["coordinator_url"])
    if origin is None:
        raise invalid("coordinator_url is not a valid URL")
    return ClaimRequest(
        session_id=data["session_id"],
        coordinator_url=data["coordinator_url"].rstrip("/"),
        coordinator_origin=origin,
        sandbox_token=data["sandbox_token"],
    )
