"""The notification service: renders a notification's template once and sends it on each channel at once.

It is the executor's `Notifier`: a notification action, and the execution's own notices (start,
completion, failure), call `NotificationService.send`; `notification_result` turns the channels' results
into the action's `RunResult`. Sending never raises for a channel's failure (a failed `ChannelResult`
saying why, counted in ``opsresponder_notifications_total``): only cancellation propagates, after the
channels in flight were cancelled with it.
"""

from __future__ import annotations

import asyncio
from typing import Final

import httpx
import structlog
from prometheus_client import CollectorRegistry

from opsresponder.config import NotificationsConfig
from opsresponder.outbound.allowlist import UrlAllowlist
from opsresponder.outbound.transport import guarded_client
from opsresponder.response.notify import channel as outcomes
from opsresponder.response.notify.base import ChannelResult, Notification
from opsresponder.response.notify.channel import Channel, ChannelError, redact
from opsresponder.response.notify.email import EmailChannel
from opsresponder.response.notify.messages import MessageTemplates, RenderedMessage
from opsresponder.response.notify.metrics import KNOWN_CHANNELS, NotificationMetrics
from opsresponder.response.notify.slack import SlackChannel
from opsresponder.response.notify.webhook import WebhookChannel
from opsresponder.response.runners.base import RunResult

log = structlog.get_logger(__name__)

# What to set for each channel, said when a notification names one that is not configured.
_CONFIG_KEYS: Final = {
    "email": "response.notifications.email.host",
    "slack": "response.notifications.slack.webhook_url",
    "webhook": "response.notifications.webhook.url",
}
# The shared HTTP client's default; each channel passes its own timeout with every request.
_HTTP_TIMEOUT_SECONDS: Final = 10.0


# Failures of the configuration, not of the channel's other end: sending again cannot help.
_CONFIGURATION: Final = frozenset(
    (outcomes.NOT_CONFIGURED, outcomes.UNKNOWN_CHANNEL, outcomes.UNKNOWN_TEMPLATE)
)


class NotificationService:
    """Sends notifications over the configured channels (`Notifier`).

    Channels whose config is null (no SMTP host, no Slack or webhook URL) are not built: a notification
    naming one gets a failed result saying which key to set.
    """

    def __init__(
        self,
        config: NotificationsConfig,
        allowlist: UrlAllowlist,
        messages: MessageTemplates,
        *,
        metrics: NotificationMetrics | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """Build the configured channels.

        Args:
            metrics: counters on the process registry; None: a private registry (tests).
            transport: instead of `GuardedTransport` over `allowlist` (tests); URLs are still checked.

        Raises:
            ConfigError: the e-mail channel's ``ca_file`` cannot be read.
        """
        self._config = config
        self._messages = messages
        self._metrics = metrics or NotificationMetrics(CollectorRegistry())
        self._client: httpx.AsyncClient | None = None
        self._channels: dict[str, Channel] = {}
        self._secrets = (config.email.password, config.webhook.secret, config.slack.webhook_url)
        if config.email.host is not None:
            self._channels["email"] = EmailChannel(config.email)
        if config.slack.webhook_url is not None or config.webhook.url is not None:
            self._client = guarded_client(allowlist, timeout=_HTTP_TIMEOUT_SECONDS, transport=transport)
            if config.slack.webhook_url is not None:
                self._channels["slack"] = SlackChannel(config.slack, allowlist, self._client)
            if config.webhook.url is not None:
                self._channels["webhook"] = WebhookChannel(config.webhook, allowlist, self._client)

    @property
    def configured_channels(self) -> list[str]:
        return sorted(self._channels)

    async def send(self, notification: Notification) -> list[ChannelResult]:
        """Render `notification` and send it on each of its channels (or the default ones), concurrently.

        Returns one result per distinct channel, in the order named; none when no channel is named and
        none is configured by default.
        """
        names = list(dict.fromkeys(notification.channels or self._config.default_channels))
        if not names:
            return []
        template = self._messages.get(notification.template)
        if template is None:
            error = (
                f"unknown message template {notification.template!r} "
                f"(known in {self._messages.source}: {self._messages.names()})"
            )
            log.warning("A notification names an unknown message template.", template=notification.template)
            for name in names:
                self._metrics.count(name, outcomes.UNKNOWN_TEMPLATE)
            return [
                ChannelResult(channel=name, success=False, error=error, retryable=False) for name in names
            ]
        message = template.render(notification.context)
        if message.render_error is not None:
            self._metrics.render_failures.labels(template.name).inc()
        sends = (self._send_one(name, message, notification) for name in names)
        return list(await asyncio.gather(*sends))

    async def aclose(self) -> None:
        """Close the HTTP client (its connections); the service sends nothing afterwards."""
        for channel in self._channels.values():
            await channel.aclose()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _send_one(
        self, name: str, message: RenderedMessage, notification: Notification
    ) -> ChannelResult:
        channel = self._channels.get(name)
        if channel is None:
            if name in KNOWN_CHANNELS:
                error = f"the {name} channel is not configured ({_CONFIG_KEYS[name]} is null)"
                return self._failed(name, message, error, outcomes.NOT_CONFIGURED)
            known = ", ".join(KNOWN_CHANNELS)
            return self._failed(
                name, message, f"unknown channel {name!r} (one of {known})", outcomes.UNKNOWN_CHANNEL
            )
        try:
            await channel.deliver(message, notification)
        except ChannelError as e:
            return self._failed(name, message, str(e), e.outcome)
        except Exception as e:  # noqa: BLE001 - a bug in one channel must not stop the others nor the executor
            log.error(
                "A notification channel failed unexpectedly.", channel=name, template=message.template,
                error_type=type(e).__name__,
            )  # fmt: skip
            error = redact(f"internal error: {type(e).__name__}: {e}", self._secrets)
            return self._failed(name, message, error, outcomes.FAILED)
        self._metrics.count(name, outcomes.SENT)
        log.debug("Sent a notification.", channel=name, template=message.template)
        return ChannelResult(channel=name, success=True)

    def _failed(self, name: str, message: RenderedMessage, error: str, outcome: str) -> ChannelResult:
        self._metrics.count(name, outcome)
        log.warning(
            "A notification was not sent.",
            channel=name,
            template=message.template,
            outcome=outcome,
            error=error,
        )
        return ChannelResult(
            channel=name, success=False, error=error, retryable=outcome not in _CONFIGURATION
        )


def notification_result(results: list[ChannelResult]) -> RunResult:
    """The `RunResult` of a notification action: success when every channel sent it.

    ``output`` names the channels that sent it; ``error`` lists the others with their reasons; ``data``
    holds every channel's result (``{"channels": [{"channel", "success", "error"}]}``), which criteria
    read as ``<action>.result``. No channel at all is a failure: the message reached nobody.
    """
    if not results:
        return RunResult(
            success=False,
            error="no channel to send to: the action names none and "
            "response.notifications.default_channels is empty",
            data={"channels": []},
        )
    sent = [r.channel for r in results if r.success]
    failed = [r for r in results if not r.success]
    data = {"channels": [{"channel": r.channel, "success": r.success, "error": r.error} for r in results]}
    output = f"sent to {', '.join(sent)}" if sent else "sent to no channel"
    if not failed:
        return RunResult(success=True, output=output, data=data)
    error = "not sent to " + "; ".join(f"{r.channel} ({r.error})" for r in failed)
    return RunResult(success=False, output=output, error=error, data=data)
