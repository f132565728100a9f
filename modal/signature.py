"""The coordinator's request signature (PROTOCOL.md section 5), as in `crates/protocol/src/provider.rs`.

Header (v2): ``X-Coordinator-Signature: t=<unix ms>,n=<nonce>,v2=<hex HMAC-SHA256(secret, text)>`` where
``text`` is ``"v2\\n<t>\\n<nonce>\\n<METHOD>\\n<path with query>\\n<hex SHA-256(body)>"``. A signature whose
``t`` is more than five minutes away from the provider's clock is refused, and so is a nonce seen within
that window (`NonceCache`). During a rotation the previous secret is accepted too. v1 is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
from dataclasses import dataclass, field

SIGNATURE_HEADER = "X-Coordinator-Signature"
SIGNATURE_TOLERANCE_MS = 5 * 60 * 1000
MAX_REMEMBERED_NONCES = 100_000

_U64_MAX = 2**64 - 1
_T_RE = re.compile(r"^\+?[0-9]+\Z")
_HEX_RE = re.compile(r"^[0-9a-fA-F]*\Z")
_NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{16,128}\Z")


class SignatureError(Exception):
    """Why a signature was refused: ``missing``, ``malformed``, ``stale``, ``mismatch`` or ``replayed``."""

    MESSAGES = {
        "missing": f"missing {SIGNATURE_HEADER} header",
        "malformed": f"malformed {SIGNATURE_HEADER} header (v2 with t, n and v2 is required)",
        "stale": "the request signature is too old or too far in the future",
        "mismatch": "the request signature does not match",
        "replayed": "this request signature was already used",
    }

    def __init__(self, kind: str):
        super().__init__(self.MESSAGES[kind])
        self.kind = kind


def _as_bytes(value: bytes | str) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def signed_text(t_ms: int, nonce: str, method: str, path_and_query: str, body: bytes) -> bytes:
    """The text a v2 signature covers."""
    digest = hashlib.sha256(_as_bytes(body)).hexdigest()
    return f"v2\n{t_ms}\n{nonce}\n{method.upper()}\n{path_and_query}\n{digest}".encode("utf-8")


def _mac(secret: bytes | str, text: bytes) -> bytes:
    return hmac.new(_as_bytes(secret), text, hashlib.sha256).digest()


def sign(secret: bytes | str, t_ms: int, nonce: str, method: str, path_and_query: str, body: bytes) -> str:
    """The header value for one request (what the coordinator sends)."""
    mac = _mac(secret, signed_text(t_ms, nonce, method, path_and_query, body))
    return f"t={t_ms},n={nonce},v2={mac.hex()}"


def _parse_t(value: str) -> int | None:
    if not _T_RE.match(value):
        return None
    number = int(value)
    return number if number <= _U64_MAX else None


def _unhex(value: str) -> bytes | None:
    if len(value) % 2 or not _HEX_RE.match(value):
        return None
    return bytes.fromhex(value)


@dataclass(frozen=True)
class Verified:
    t_ms: int
    nonce: str


def verify(
    secrets: list[bytes | str | None],
    header: str | None,
    method: str,
    path_and_query: str,
    body: bytes,
    now_ms: int,
) -> Verified:
    """The signature's time and nonce, or `SignatureError` unless ``header`` signs this request with one
    of ``secrets`` (the current one, then the previous one during a rotation) close enough to ``now_ms``.

    Parsing follows the Rust reference: comma-separated ``key=value`` parts, the last of each wins, unknown
    parts are ignored, and the signed text uses the parsed number. The nonce is not remembered here: pass
    the result to `NonceCache.admit`.
    """
    if header is None:
        raise SignatureError("missing")
    t = nonce = mac = None
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            t = _parse_t(value)
        elif key == "n":
            nonce = value if _NONCE_RE.match(value) else None
        elif key == "v2":
            mac = _unhex(value)
            mac = mac if mac is not None and len(mac) == 32 else None
    if t is None or nonce is None or mac is None:
        raise SignatureError("malformed")
    if abs(t - now_ms) > SIGNATURE_TOLERANCE_MS:
        raise SignatureError("stale")
    text = signed_text(t, nonce, method, path_and_query, body)
    if any(hmac.compare_digest(_mac(secret, text), mac) for secret in secrets if secret):
        return Verified(t, nonce)
    raise SignatureError("mismatch")


@dataclass
class NonceCache:
    """The nonces accepted, each kept until its signature would be stale anyway; time is an input.

    When full (after forgetting the expired ones) it refuses new requests rather than shorten the window,
    which would let a replay through.
    """

    limit: int = MAX_REMEMBERED_NONCES
    _seen: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self, verified: Verified, now_ms: int) -> None:
        with self._lock:
            if verified.nonce in self._seen:
                raise SignatureError("replayed")
            if len(self._seen) >= self.limit:
                self._seen = {n: until for n, until in self._seen.items() if until >= now_ms}
                if len(self._seen) >= self.limit:
                    raise SignatureError("replayed")
            self._seen[verified.nonce] = verified.t_ms + SIGNATURE_TOLERANCE_MS

    def __len__(self) -> int:
        return len(self._seen)
