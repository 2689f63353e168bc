"""Slack and the generic webhook against a real local HTTP receiver: bodies, signatures, the allowlist."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
import structlog.testing
from prometheus_client import CollectorRegistry

from opsresponder.config import NotificationsConfig
from opsresponder.outbound.allowlist import UrlAllowlist
from opsresponder.outbound.delivery import DELIVERY_HEADER, USER_AGENT
from opsresponder.outbound.signing import SIGNATURE_HEADER, verify_signature
from opsresponder.response.notify.base import Notification
from opsresponder.response.notify.messages import MessageTemplate, MessageTemplates, TemplateSpec
from opsresponder.response.notify.metrics import NotificationMetrics
from opsresponder.response.notify.service import NotificationService, notification_result
from tests.integration.outbound.conftest import Receiver
from tests.waiting import WAIT_SECONDS

SECRET = "notification-secret-5e6f"
LOCAL = UrlAllowlist(networks=["127.0.0.0/8"])
CONTEXT: dict[str, Any] = {
    "event": {"id": 12, "host": "db-2", "title": "Disk <b>93%</b> & <!channel>", "severity": "critical"},
    "execution": {
        "id": "exec_9",
        "status": "running",
        "actions": [{"name": "measure", "status": "completed"}],
    },
}


def templates() -> MessageTemplates:
    plain = TemplateSpec(subject="Disk on {{ event.host }}", body="{{ event.title }}\n")
    slack = TemplateSpec(subject="s", body="b", slack="*{{ event.host }}*: {{ event.title }}")
    return MessageTemplates(
        {
            "disk": MessageTemplate("disk", "test", plain),
            "disk_slack": MessageTemplate("disk_slack", "test", slack),
        }
    )


def make_service(
    config: dict[str, Any], allowlist: UrlAllowlist = LOCAL, registry: CollectorRegistry | None = None
) -> NotificationService:
    return NotificationService(
        msgspec.convert(config, NotificationsConfig),
        allowlist,
        templates(),
        metrics=NotificationMetrics(registry or CollectorRegistry()),
    )


@pytest.fixture
async def services(receiver: Receiver) -> AsyncIterator[list[NotificationService]]:
    """Services made by a test, closed after it (their HTTP clients, before the receiver stops: its
    connection handlers then end on their own instead of being cancelled)."""
    made: list[NotificationService] = []
    yield made
    for service in made:
        await service.aclose()


def slack_url(receiver: Receiver) -> str:
    return f"http://127.0.0.1:{receiver.port}/services/T0001/B0002/tokentokentoken"


async def test_slack_posts_the_escaped_text(receiver: Receiver, services: list[NotificationService]) -> None:
    services.append(service := make_service({"slack": {"webhook_url": slack_url(receiver)}}))
    results = await service.send(Notification(template="disk_slack", channels=("slack",), context=CONTEXT))
    assert notification_result(results).success
    (request,) = receiver.requests
    assert request.path == "/services/T0001/B0002/tokentokentoken"
    assert request.headers["content-type"] == "application/json"
    assert msgspec.json.decode(request.body) == {
        "text": "*db-2*: Disk &lt;b&gt;93%&lt;/b&gt; &amp; &lt;!channel&gt;"
    }


async def test_slack_without_its_own_text_gets_subject_and_body(
    receiver: Receiver, services: list[NotificationService]
) -> None:
    services.append(service := make_service({"slack": {"webhook_url": slack_url(receiver)}}))
    await service.send(Notification(template="disk", channels=("slack",), context=CONTEXT))
    (request,) = receiver.requests
    assert (
        msgspec.json.decode(request.body)["text"]
        == "*Disk on db-2*\nDisk &lt;b&gt;93%&lt;/b&gt; &amp; &lt;!channel&gt;"
    )


async def test_the_webhook_is_signed_like_subscription_deliveries(
    receiver: Receiver, services: list[NotificationService]
) -> None:
    registry = CollectorRegistry()
    config = {"webhook": {"url": receiver.url, "secret": SECRET}}
    services.append(service := make_service(config, registry=registry))
    (result,) = await service.send(Notification(template="disk", channels=("webhook",), context=CONTEXT))
    assert result.success, result.error
    (request,) = receiver.requests
    assert request.path == "/hook"
    assert verify_signature(SECRET, request.headers[SIGNATURE_HEADER.lower()], request.body)
    assert not verify_signature("another-secret", request.headers[SIGNATURE_HEADER.lower()], request.body)
    assert request.headers["user-agent"] == USER_AGENT
    assert len(request.headers[DELIVERY_HEADER.lower()]) == 36  # a UUID per request
    assert msgspec.json.decode(request.body) == {
        "template": "disk",
        "subject": "Disk on db-2",
        "body": "Disk <b>93%</b> & <!channel>\n",  # text: nothing escaped
        "format": "text",
        "render_error": None,
        "context": CONTEXT,
    }
    assert (
        registry.get_sample_value(
            "opsresponder_notifications_total", {"channel": "webhook", "outcome": "sent"}
        )
        == 1
    )


async def test_without_a_secret_the_webhook_is_unsigned(
    receiver: Receiver, services: list[NotificationService]
) -> None:
    services.append(service := make_service({"webhook": {"url": receiver.url}}))
    (result,) = await service.send(Notification(template="disk", channels=("webhook",), context=CONTEXT))
    assert result.success
    assert SIGNATURE_HEADER.lower() not in receiver.requests[0].headers


async def test_all_channels_at_once_and_the_default_channels(
    receiver: Receiver, services: list[NotificationService]
) -> None:
    config = {
        "slack": {"webhook_url": slack_url(receiver)},
        "webhook": {"url": receiver.url, "secret": SECRET},
        "default_channels": ["slack", "webhook"],
    }
    services.append(service := make_service(config))
    results = await service.send(Notification(template="disk", context=CONTEXT))
    assert [(r.channel, r.success) for r in results] == [("slack", True), ("webhook", True)]
    assert sorted(r.path for r in receiver.requests) == ["/hook", "/services/T0001/B0002/tokentokentoken"]


async def test_a_url_outside_the_allowlist_makes_no_request(
    receiver: Receiver, services: list[NotificationService]
) -> None:
    registry = CollectorRegistry()
    config = {
        "slack": {"webhook_url": slack_url(receiver)},
        "webhook": {"url": receiver.url, "secret": SECRET},
    }
    services.append(service := make_service(config, UrlAllowlist(networks=["10.0.0.0/8"]), registry))
    results = await service.send(
        Notification(template="disk", channels=("slack", "webhook"), context=CONTEXT)
    )
    for result in results:
        assert not result.success and result.error is not None
        assert result.error == (
            f"http://127.0.0.1:{receiver.port}/…: URL not allowed: "
            "the address 127.0.0.1 is not in outbound.allowed_networks"
        )
    assert receiver.requests == []
    assert (
        registry.get_sample_value(
            "opsresponder_notifications_total", {"channel": "slack", "outcome": "not_allowed"}
        )
        == 1
    )


async def test_an_error_answer_fails_without_the_url_token_or_secret(
    receiver: Receiver, services: list[NotificationService]
) -> None:
    receiver.status = 404
    config = {
        "slack": {"webhook_url": slack_url(receiver)},
        "webhook": {"url": receiver.url, "secret": SECRET},
    }
    services.append(service := make_service(config))
    results = await service.send(
        Notification(template="disk", channels=("slack", "webhook"), context=CONTEXT)
    )
    outcome = notification_result(results)
    assert not outcome.success
    assert outcome.error == (
        f"not sent to slack (http://127.0.0.1:{receiver.port}/…: HTTP 404 X: receiver says no); "
        f"webhook (http://127.0.0.1:{receiver.port}/…: HTTP 404 X: receiver says no)"
    )
    assert "tokentokentoken" not in outcome.error and SECRET not in outcome.error


async def test_a_receiver_that_is_down_or_slow_fails_with_the_reason(
    receiver: Receiver, services: list[NotificationService]
) -> None:
    config = {"slack": {"webhook_url": slack_url(receiver), "timeout_seconds": 0.3}}
    services.append(service := make_service(config))
    receiver.delay = 5.0
    (slow,) = await service.send(Notification(template="disk", channels=("slack",), context=CONTEXT))
    assert slow.error == f"http://127.0.0.1:{receiver.port}/…: timed out after 0.3 s"
    await receiver.down()
    (down,) = await service.send(Notification(template="disk", channels=("slack",), context=CONTEXT))
    assert not down.success and down.error is not None
    assert down.error.startswith(f"http://127.0.0.1:{receiver.port}/…: ConnectError")
    assert "tokentokentoken" not in down.error


async def test_cancelling_a_send_propagates(receiver: Receiver, services: list[NotificationService]) -> None:
    services.append(service := make_service({"webhook": {"url": receiver.url, "timeout_seconds": 30}}))
    receiver.delay = 30.0
    sending = asyncio.create_task(service.send(Notification(template="disk", channels=("webhook",))))
    await asyncio.wait_for(receiver.request_started.wait(), WAIT_SECONDS)
    sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sending


async def test_no_secret_reaches_the_logs(receiver: Receiver, services: list[NotificationService]) -> None:
    receiver.status = 500
    config = {
        "slack": {"webhook_url": slack_url(receiver)},
        "webhook": {"url": receiver.url, "secret": SECRET},
    }
    services.append(service := make_service(config))
    with structlog.testing.capture_logs() as logs:
        await service.send(Notification(template="disk", channels=("slack", "webhook"), context=CONTEXT))
        await receiver.down()
        await service.send(Notification(template="disk", channels=("slack", "webhook"), context=CONTEXT))
    assert len(logs) == 4
    text = repr(logs)
    assert "tokentokentoken" not in text and SECRET not in text
