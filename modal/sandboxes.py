"""The only code that calls the Modal SDK for sandboxes: a thin adapter from plans to `modal.*` calls.

Every Modal exception becomes a `ProviderFailure` whose message names the operation and the exception
class, with known secret values scrubbed out. The SDK's blocking interface is used; FastAPI runs the endpoints
in its thread pool.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any, Iterable

from errors import ProviderFailure, scrub
from planning import ENTRY_SCRIPT, WORKSPACE_DIR

log = logging.getLogger("sandboxes")


class ModalBackend:
    def __init__(self, modal_module: Any = None, *, app: Any = None, snapshot_timeout_s: int = 300):
        self.modal = modal_module or importlib.import_module("modal")
        self.app = app
        self.snapshot_timeout_s = snapshot_timeout_s

    # -- helpers ----------------------------------------------------------------------------------

    def _failure(self, operation: str, exc: BaseException, secrets: Iterable[str] = ()) -> ProviderFailure:
        """A 502 naming the operation and the exception class; ``.missing`` tells a Modal NotFoundError."""
        exc_mod = getattr(self.modal, "exception", None)
        not_found = getattr(exc_mod, "NotFoundError", None)
        detail = scrub(str(exc), secrets)[:300]
        failure = ProviderFailure(f"modal {operation} failed: {type(exc).__name__}" + (f": {detail}" if detail else ""))
        failure.missing = not_found is not None and isinstance(exc, not_found)
        return failure

    @staticmethod
    def _detach(sandbox) -> None:
        """Release the client's connection resources for a sandbox handle (the sandbox keeps running)."""
        detach = getattr(sandbox, "detach", None)
        if detach is None:
            return
        try:
            detach()
        except Exception as exc:  # noqa: BLE001 - best effort
            log.debug("detach failed (%s)", type(exc).__name__)

    def _image(self, kind: str, ref: str):
        if kind in ("snapshot", "image"):
            return self.modal.Image.from_id(ref)
        return self.modal.Image.from_name(ref)

    def _sandbox(self, provider_id: str, operation: str):
        try:
            return self.modal.Sandbox.from_id(provider_id)
        except Exception as exc:  # noqa: BLE001
            failure = self._failure(operation, exc)
            if failure.missing:
                raise ProviderFailure("the sandbox no longer exists", status=404, code="not_found") from None
            raise failure from None

    # -- sandboxes --------------------------------------------------------------------------------

    def _create_kwargs(self, plan, image) -> dict[str, Any]:
        """What every ``Sandbox.create`` here passes: app, image, environment, secrets, resources, tags."""
        return dict(
            app=self.app,
            image=image,
            env=dict(plan.env),
            secrets=[self.modal.Secret.from_name(name) for name in plan.secret_names],
            timeout=plan.timeout_s,
            cpu=plan.cpu,
            memory=plan.memory_mb,
            tags=dict(plan.tags),
        )

    def create_sandbox(self, plan) -> str:
        secrets = plan.secret_values
        try:
            kwargs = self._create_kwargs(plan, self._image(plan.image_kind, plan.image_ref))
            kwargs["volumes"] = {plan.memory_path: self.modal.Volume.from_name(plan.volume_name, create_if_missing=True)}
            if plan.outbound_domain_allowlist is not None:
                kwargs["outbound_domain_allowlist"] = list(plan.outbound_domain_allowlist)
            if plan.outbound_cidr_allowlist is not None:
                kwargs["outbound_cidr_allowlist"] = list(plan.outbound_cidr_allowlist)
            sandbox = self.modal.Sandbox.create(*plan.command, **kwargs)
            provider_id = sandbox.object_id
            self._detach(sandbox)
            return provider_id
        except ProviderFailure:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self._failure("Sandbox.create", exc, secrets) from None

    def snapshot_sandbox(self, provider_id: str) -> str:
        sandbox = self._sandbox(provider_id, "Sandbox.from_id")
        try:
            if sandbox.poll() is not None:
                raise ProviderFailure("the sandbox has already finished", status=409, code="conflict")
            image = sandbox.snapshot_filesystem(timeout=self.snapshot_timeout_s)
            return image.object_id
        except ProviderFailure:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self._failure("snapshot_filesystem", exc) from None
        finally:
            self._detach(sandbox)

    def terminate_sandbox(self, provider_id: str) -> None:
        try:
            sandbox = self.modal.Sandbox.from_id(provider_id)
            sandbox.terminate()
            self._detach(sandbox)
        except Exception as exc:  # noqa: BLE001
            failure = self._failure("Sandbox.terminate", exc)
            if failure.missing:
                return  # already gone: what a delete wants
            raise failure from None

    def assign_sandbox(self, provider_id: str, path: str, text: str) -> None:
        """Writes a warm sandbox's assignment where its bridge waits: a temporary file through
        ``Sandbox.open``, then ``mv`` into place, so the bridge never reads half of it."""
        sandbox = self._sandbox(provider_id, "Sandbox.from_id")
        temp = f"{path}.tmp"
        try:
            if sandbox.poll() is not None:
                raise ProviderFailure("the warm sandbox has already finished", status=409, code="conflict")
            handle = sandbox.open(temp, "w")
            try:
                handle.write(text)
            finally:
                handle.close()
            moved = sandbox.exec("mv", temp, path, timeout=30)
            if moved.wait() != 0:
                raise ProviderFailure("could not move the assignment into place")
        except ProviderFailure:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self._failure("Sandbox.open", exc, [text]) from None
        finally:
            self._detach(sandbox)

    def check_app(self, app_name: str) -> None:
        """Looks the deployed app up by name: Modal takes this deployment's credentials (health)."""
        try:
            self.modal.App.lookup(app_name)
        except Exception as exc:  # noqa: BLE001
            raise self._failure("App.lookup", exc) from None

    def find_sandbox(self, sandbox_id: str) -> str | None:
        """The Modal id of the running sandbox tagged with ``sandbox_id`` (when the state lost it)."""
        try:
            for sandbox in self.modal.Sandbox.list(tags={"sandbox_id": sandbox_id}):
                return sandbox.object_id
        except Exception as exc:  # noqa: BLE001
            raise self._failure("Sandbox.list", exc) from None
        return None

    # -- repo images ------------------------------------------------------------------------------

    def build_repo_image(self, plan) -> dict:
        """Clone and install the repo in a sandbox on the base image, snapshot its filesystem, end it."""
        secrets = plan.secret_values
        sandbox = None
        try:
            sandbox = self.modal.Sandbox.create(
                "sleep",
                "infinity",
                **self._create_kwargs(plan, self.modal.Image.from_name(plan.base_image_name)),
            )
            prepare = sandbox.exec(ENTRY_SCRIPT, "prepare", timeout=plan.timeout_s)
            code = prepare.wait()
            if code != 0:
                tail = scrub(prepare.stderr.read()[-500:], secrets).strip()
                raise ProviderFailure(f"preparing the workspace failed (exit {code}): {tail}")
            head = sandbox.exec("git", "-C", WORKSPACE_DIR, "rev-parse", "HEAD", timeout=60)
            commit = head.stdout.read().strip() if head.wait() == 0 else None
            image = sandbox.snapshot_filesystem(timeout=self.snapshot_timeout_s)
            return {"image_id": image.object_id, "commit": commit}
        except ProviderFailure:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self._failure("image build", exc, secrets) from None
        finally:
            if sandbox is not None:
                try:
                    sandbox.terminate()
                except Exception as exc:  # noqa: BLE001
                    log.warning("could not terminate build sandbox (%s)", type(exc).__name__)
                self._detach(sandbox)
