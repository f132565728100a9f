"""What to ask Modal for, computed without Modal: the image, the environment, the network policy, the volume.

`plan_sandbox` turns a validated `CreateRequest` and the app's `Config` into a `SandboxPlan`, which
`sandboxes.ModalBackend.create_sandbox` carries out.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Iterable

from config import Config
from validation import CreateRequest

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
        "SANDBOX_TOKEN_FILE",
        "SANDBOX_TOKEN_DIR",
        "SANDBOX_ASSIGNMENT_FILE",
        "REPO_OWNER",
        "REPO_NAME",
        "REPO_BRANCH",
        "REPO_CLONE_URL",
        "WORKSPACE",
        "WORKSPACE_MODE",
        "MEMORY_DIR",
        # The image's: whom the agent runs as, and the bridge's own folder.
        "AGENT_USER",
        "BRIDGE_STATE_DIR",
        "HOME",
    }
)


def volume_name(owner: str, name: str) -> str:
    """The per-repo memory Volume: ``agent-memory-<owner>--<name>``, a valid Modal object name (≤ 64).

    GitHub owners cannot contain ``--``, so the separator keeps different repos apart; over-long names
    are cut and suffixed with a hash of the full name.
    """

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
            # The only way into a Modal sandbox; sandbox-entry moves it into a file the bridge
            # reads and deletes, before anything else starts.
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


# Where a warm sandbox's bridge waits for its assignment; sandbox-entry makes the folder 0700.
ASSIGNMENT_FILE = "/run/sandbox-assignment/assignment"


def plan_warm(req: CreateRequest, config: Config, repo_image: dict | None = None) -> SandboxPlan:
    """A warm sandbox (``POST /warm-sandboxes``): the plan of a cold one without any session secret.

    No coordinator URL, session id or sandbox token goes in its environment: its bridge starts the
    agent and waits for ``SANDBOX_ASSIGNMENT_FILE``, which the claim writes. It may reach every
    coordinator of the allowlist (the one that claims it is not known yet) and the git host.
    """
    plan = plan_sandbox(req, config, repo_image)
    for name in ("COORDINATOR_URL", "SESSION_ID", "SANDBOX_TOKEN"):
        plan.env.pop(name, None)
    plan.env["SANDBOX_ASSIGNMENT_FILE"] = ASSIGNMENT_FILE
    coordinators = sorted(
        (origin.split("://", 1)[-1].split(":", 1)[0] for origin in config.coordinator_allowlist)
    )
    domains, cidrs = network_policy(
        req.block_network, req.allowed_hosts, [*coordinators, req.repo.clone_host()], config.extra_allowed_hosts
    )
    plan.outbound_domain_allowlist, plan.outbound_cidr_allowlist = domains, cidrs
    plan.tags = {"role": "warm", "sandbox_id": req.sandbox_id, "repo": req.repo.full_name}
    plan.session_id = ""
    plan.secret_values = [v for v in plan.secret_values if v]
    return plan
