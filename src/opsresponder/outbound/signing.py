"""HMAC-SHA256 signatures of delivery bodies, in the header format receivers verify.

``X-OpsResponder-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``

The timestamp is inside the signed text, so a captured request cannot be replayed later with a fresh
timestamp; receivers refuse a ``t`` too far from their clock. ``v1`` names the scheme so that a later
scheme can be sent alongside during a migration. `verify_signature` is the reference receiver-side check
(the example in docs/subscriptions.md does the same with the standard library only).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Final

SIGNATURE_HEADER: Final = "X-OpsResponder-Signature"
SCHEME: Final = "v1"
DEFAULT_TOLERANCE_SECONDS: Final = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``"<timestamp>." + body`` under `secret` (UTF-8)."""
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """The value of the signature header for `body` sent at `timestamp` (unix seconds)."""
    return f"t={timestamp},{SCHEME}={signature(secret, timestamp, body)}"


def verify_signature(
    secret: str,
    header: str,
    body: bytes,
    *,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """True when `header` carries a ``v1`` signature of `body` under `secret`, within the tolerance.

    Any ``v1`` entry may match (several are sent while a secret is being rotated); comparison is in
    constant time.
    """
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == SCHEME:
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        return False
    expected = signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, c) for c in candidates)
