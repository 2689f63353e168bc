"""The contract between the executor and the notification channels."""

from __future__ import annotations

from typing import Any, Protocol

import msgspec


class Notification(msgspec.Struct, kw_only=True, frozen=True):
    """One message to send.

    Attributes:
        template: a message template's name (``high_cpu_alert``: config/notifications/high_cpu_alert.yaml).
        channels: ``email``, ``slack``, ``webhook``; empty: the configured default channels.
        context: what the template renders (``event``, ``execution``, ``action``, variables...); plain
            JSON-like values only.
    """

    template: str
    channels: tuple[str, ...] = ()
    context: dict[str, Any] = msgspec.field(default_factory=dict)


class ChannelResult(msgspec.Struct, kw_only=True, frozen=True):
    channel: str
    success: bool
    error: str | None = None
    retryable: bool = True
    """For a failure: whether sending again may succeed. False when the configuration is at fault (the
    channel is not configured, or unknown, or the template is): only an operator can mend that."""


class Notifier(Protocol):
    """Renders and sends; never raises for a channel's failure (that is a failed `ChannelResult`)."""

    async def send(self, notification: Notification) -> list[ChannelResult]: ...
