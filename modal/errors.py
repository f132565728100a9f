"""The project's JSON error shape, ``{"error": {"code": "…", "message": "…"}}``, and secret scrubbing."""

from __future__ import annotations

import re
from typing import Iterable

# Values that look like credentials even when we were not told about them.
SECRET_LIKE_RE = re.compile(
    r"(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|sk-[A-Za-z0-9_-]{20,}|ak-[A-Za-z0-9]{16,}|as-[A-Za-z0-9]{16,})"
)


class ApiError(Exception):
    """An error answered as ``{"error": {"code", "message"}}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


def invalid(message: str) -> ApiError:
    """422 ``invalid_field``."""
    return ApiError(422, "invalid_field", message)


class ProviderFailure(ApiError):
    """A Modal call failed: 502 ``provider_error`` unless a more precise status is given."""

    # True when Modal said an object (image, secret, sandbox…) does not exist.
    missing = False

    def __init__(self, message: str, status: int = 502, code: str = "provider_error"):
        super().__init__(status, code, message)


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without the given secret values or anything that looks like a token."""
    for value in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(value, "[redacted]")
    return SECRET_LIKE_RE.sub("[redacted]", text)
