"""The coordinator's request signature (PROTOCOL.md section 5), as in `crates/protocol/src/provider.rs`.

Header: ``X-Coordinator-Signature: t=<unix ms>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>``.
A signature whose ``t`` is more than five minutes away from the provider's clock is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import re

SIGNATURE_HEADER = "X-Coordinator-Signature"
SIGNATURE_TOLERANCE_MS = 5 * 60 * 1000

_U64_MAX = 2**64 - 1
_T_RE = re.compile(r"^\+?[0-9]+$")
_HEX_RE = re.compile(r"^[0-9a-fA-F]*$")


class SignatureError(Exception):
    """Why a signature was refused: ``missing``, ``malformed``, ``stale`` or ``mismatch``."""

    MESSAGES = {
        "missing": f"missing {SIGNATURE_HEADER} header",
        "malformed": f"malformed {SIGNATURE_HEADER} header",
        "stale": "the request signature is too old or too far in the future",
        "mismatch": "the request signature does not match",
    }

    def __init__(self, kind: str):
        super().__init__(self.MESSAGES[kind])
        self.kind = kind


def _as_bytes(value: bytes | str) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _mac(secret: bytes | str, t_ms: int, body: bytes) -> bytes:
    return hmac.new(_as_bytes(secret), f"{t_ms}.".encode("ascii") + body, hashlib.sha256).digest()


def sign(secret: bytes | str, t_ms: int, body: bytes) -> str:
    """The header value for ``body`` signed at ``t_ms`` (what the coordinator sends)."""
    return f"t={t_ms},v1={_mac(secret, t_ms, _as_bytes(body)).hex()}"


def _parse_t(value: str) -> int | None:
    if not _T_RE.match(value):
        return None
    number = int(value)
    return number if number <= _U64_MAX else None


def _unhex(value: str) -> bytes | None:
    if len(value) % 2 or not _HEX_RE.match(value):
        return None
    return bytes.fromhex(value)


def verify(secret: bytes | str, header: str | None, body: bytes, now_ms: int) -> None:
    """Raise `SignatureError` unless ``header`` signs ``body`` with ``secret`` close enough to ``now_ms``.

    Parsing follows the Rust reference: comma-separated ``key=value`` parts, the last ``t`` and ``v1``
    win, unknown parts are ignored, and the signed text uses the parsed number.
    """
    if header is None:
        raise SignatureError("missing")
    t = None
    v1 = None
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            t = _parse_t(value)
        elif key == "v1":
            v1 = _unhex(value)
    if t is None or v1 is None:
        raise SignatureError("malformed")
    if abs(t - now_ms) > SIGNATURE_TOLERANCE_MS:
        raise SignatureError("stale")
    if not hmac.compare_digest(_mac(secret, t, _as_bytes(body)), v1):
        raise SignatureError("mismatch")
