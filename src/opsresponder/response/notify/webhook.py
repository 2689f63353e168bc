"""The generic webhook channel: ``POST {template, subject, body, context}`` as JSON, signed.

Signed exactly like subscription deliveries (docs/subscriptions.md): with a ``secret``, the header
``X-OpsResponder-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``, so one
receiver-side check (`opsresponder.outbound.signing.verify_signature`) serves both; every request also
carries a fresh ``X-OpsResponder-Delivery`` id (receivers deduplicate retries with it) and the
``User-Agent`` of deliveries.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import msgspec

from opsresponder.config import NotificationWebhookConfig
from opsresponder.outbound.allowlist import UrlAllowlist
from opsresponder.outbound.delivery import DELIVERY_HEADER, USER_AGENT
from opsresponder.outbound.signing import SIGNATURE_HEADER, signature_header
from opsresponder.response.notify.base import Notification
from opsresponder.response.notify.messages import RenderedMessage
from opsresponder.response.notify.posting import JsonEndpoint


def _encode_default(value: Any) -> Any:
    # The context is meant to hold JSON-like values; anything else is sent as its text, not refused.
    return str(value)


_encode = msgspec.json.Encoder(enc_hook=_encode_default).encode


class WebhookChannel:
    """Posts each notification, rendered and with its context, to the configured URL."""

    name = "webhook"

    def __init__(
        self, config: NotificationWebhookConfig, allowlist: UrlAllowlist, client: httpx.AsyncClient
    ) -> None:
        """Build from config; `client` is shared with the other HTTP channels and closed by its owner.

        Raises:
            ValueError: ``url`` is null (the service reports the channel as not configured).
        """
        if config.url is None:
            raise ValueError("the webhook channel needs a URL")
        self._secret = config.secret
        self._endpoint = JsonEndpoint(
            config.url,
            timeout=config.timeout_seconds,
            allowlist=allowlist,
            client=client,
            secrets=(config.secret,),
        )

    async def deliver(self, message: RenderedMessage, notification: Notification) -> None:
        """POST the JSON body, signed when a secret is configured.

        Raises:
            ChannelError: see `JsonEndpoint.post`.
        """
        body = encode_body(message, notification)
        headers = {"User-Agent": USER_AGENT, DELIVERY_HEADER: str(uuid.uuid4())}
        if self._secret is not None:
            # Wall-clock time: receivers compare it with their own clock.
            headers[SIGNATURE_HEADER] = signature_header(self._secret, int(time.time()), body)
        await self._endpoint.post(body, headers)

    async def aclose(self) -> None:
        """The shared client is its owner's to close."""


def encode_body(message: RenderedMessage, notification: Notification) -> bytes:
    """``{"template", "subject", "body", "format", "render_error", "context"}`` as JSON."""
    return _encode(
        {
            "template": message.template,
            "subject": message.subject,
            "body": message.body,
            "format": message.format,
            "render_error": message.render_error,
            "context": notification.context,
        }
    )
