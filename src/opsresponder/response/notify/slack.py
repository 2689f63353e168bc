"""The Slack channel: an incoming webhook (``POST {"text": ...}``), its URL allowlisted.

The incoming-webhook URL is the credential (whoever has it can post to the channel), so it never
appears in a log or an error: they name ``https://hooks.slack.com/…`` only.
"""

from __future__ import annotations

import httpx
import msgspec

from opsresponder.config import SlackConfig
from opsresponder.outbound.allowlist import UrlAllowlist
from opsresponder.response.notify.base import Notification
from opsresponder.response.notify.messages import RenderedMessage
from opsresponder.response.notify.posting import JsonEndpoint

_encode = msgspec.json.Encoder().encode


class SlackChannel:
    """Posts each message's Slack text to the configured incoming webhook."""

    name = "slack"

    def __init__(self, config: SlackConfig, allowlist: UrlAllowlist, client: httpx.AsyncClient) -> None:
        """Build from config; `client` is shared with the other HTTP channels and closed by its owner.

        Raises:
            ValueError: ``webhook_url`` is null (the service reports the channel as not configured).
        """
        if config.webhook_url is None:
            raise ValueError("the Slack channel needs a webhook URL")
        self._endpoint = JsonEndpoint(
            config.webhook_url, timeout=config.timeout_seconds, allowlist=allowlist, client=client
        )

    async def deliver(self, message: RenderedMessage, notification: Notification) -> None:
        """POST ``{"text": message.slack}``.

        Raises:
            ChannelError: see `JsonEndpoint.post`.
        """
        await self._endpoint.post(_encode({"text": message.slack}))

    async def aclose(self) -> None:
        """The shared client is its owner's to close."""
