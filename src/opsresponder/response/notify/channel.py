"""What every notification channel is: a name and `deliver`, which raises `ChannelError` on failure.

The service (service.py) turns each delivery into a `ChannelResult` and counts it; a channel only says
what went wrong, in words that never contain a secret (`redact`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Protocol

from opsresponder.response.notify import NotifyError
from opsresponder.response.notify.base import Notification
from opsresponder.response.notify.messages import RenderedMessage

# `outcome` label values of opsresponder_notifications_total.
SENT: Final = "sent"
FAILED: Final = "failed"
TIMEOUT: Final = "timeout"
NOT_ALLOWED: Final = "not_allowed"
NOT_CONFIGURED: Final = "not_configured"
UNKNOWN_TEMPLATE: Final = "unknown_template"
UNKNOWN_CHANNEL: Final = "unknown_channel"

REDACTED: Final = "[redacted]"


class ChannelError(NotifyError):
    """A delivery failed; the message (for people, free of secrets) says why, `outcome` how to count it."""

    def __init__(self, message: str, outcome: str = FAILED) -> None:
        super().__init__(message)
        self.outcome = outcome


class Channel(Protocol):
    """One configured way to send a rendered message."""

    name: str

    async def deliver(self, message: RenderedMessage, notification: Notification) -> None:
        """Send `message`.

        Raises:
            ChannelError: it was not sent (refused, unreachable, timed out, answered an error).
        """
        ...

    async def aclose(self) -> None:
        """Release what the channel holds open."""
        ...


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every occurrence of each non-empty secret replaced by ``[redacted]``.

    Third-party errors sometimes quote what they were given (a URL, a login): every error a channel
    reports passes through here with that channel's secrets.
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text
