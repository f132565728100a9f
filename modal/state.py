"""The app's state: a key/value mapping (a `modal.Dict` in production, a `dict` in the tests).

Keys: ``sandbox:<sandbox_id>`` and ``snapshot:<snapshot_id>`` (``{session_id, sandbox_id}``: whose
snapshot it is) here; the build and image keys are listed in `builds`.
"""

from __future__ import annotations

import time
from typing import Any, MutableMapping

from errors import ProviderFailure


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


def snapshot_key(snapshot_id: str) -> str:
    return f"snapshot:{snapshot_id}"


def iso_utc(ms: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))
