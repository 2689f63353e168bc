"""The notification service without a network: channel choice, unknown names, unconfigured channels,
the executor's RunResult, and the counters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
from prometheus_client import CollectorRegistry

from opsresponder.config import NotificationsConfig
from opsresponder.core.errors import ConfigError
from opsresponder.outbound.allowlist import UrlAllowlist
from opsresponder.response.notify.base import ChannelResult, Notification, Notifier
from opsresponder.response.notify.channel import ChannelError, redact
from opsresponder.response.notify.email import build_message, recipients_of
from opsresponder.response.notify.messages import (
    MessageTemplate,
    MessageTemplates,
    RenderedMessage,
    TemplateSpec,
)
from opsresponder.response.notify.metrics import NotificationMetrics
from opsresponder.response.notify.posting import display_url
from opsresponder.response.notify.service import NotificationService, notification_result


def templates() -> MessageTemplates:
    spec = TemplateSpec(subject="Disk on {{ event.host }}", body="{{ event.title }}")
    return MessageTemplates({"disk": MessageTemplate("disk", "test", spec)}, "test-dir")


def service(registry: CollectorRegistry | None = None, **config: Any) -> NotificationService:
    return NotificationService(
        msgspec.convert(config, NotificationsConfig),
        UrlAllowlist(),
        templates(),
        metrics=NotificationMetrics(registry or CollectorRegistry()),
    )


def counted(registry: CollectorRegistry, channel: str, outcome: str) -> float:
    value = registry.get_sample_value(
        "opsresponder_notifications_total", {"channel": channel, "outcome": outcome}
    )
    return value or 0.0


async def test_an_unconfigured_channel_fails_saying_which_key_to_set() -> None:
    registry = CollectorRegistry()
    notifier: Notifier = service(registry)
    results = await notifier.send(Notification(template="disk", channels=("email", "slack", "webhook")))
    assert [r.channel for r in results] == ["email", "slack", "webhook"]
    assert not any(r.success for r in results)
    errors = [r.error or "" for r in results]
    assert "email channel is not configured (response.notifications.email.host is null)" in errors[0]
    assert "slack.webhook_url is null" in errors[1]
    assert "webhook.url is null" in errors[2]
    assert counted(registry, "slack", "not_configured") == 1


async def test_an_unknown_template_fails_every_channel_naming_it() -> None:
    registry = CollectorRegistry()
    results = await service(registry).send(
        Notification(template="nope", channels=("email", "email", "slack"))
    )
    assert [r.channel for r in results] == ["email", "slack"]  # each channel once
    for result in results:
        assert not result.success
        assert result.error == "unknown message template 'nope' (known in test-dir: disk)"
    assert counted(registry, "email", "unknown_template") == 1


async def test_an_unknown_channel_fails_and_is_counted_without_its_name_as_a_label() -> None:
    registry = CollectorRegistry()
    (result,) = await service(registry).send(Notification(template="disk", channels=("pagerduty",)))
    assert result == ChannelResult(
        channel="pagerduty",
        success=False,
        error="unknown channel 'pagerduty' (one of email, slack, webhook)",
        retryable=False,  # the configuration is at fault: sending again cannot help
    )
    assert counted(registry, "other", "unknown_channel") == 1


async def test_default_channels_apply_when_a_notification_names_none() -> None:
    notifier = service(default_channels=["webhook"])
    (result,) = await notifier.send(Notification(template="disk"))
    assert result.channel == "webhook" and not result.success
    assert await service().send(Notification(template="disk")) == []
    await notifier.aclose()


def test_notification_result_succeeds_only_when_every_channel_sent() -> None:
    ok = notification_result([ChannelResult(channel="email", success=True)])
    assert ok.success and ok.output == "sent to email" and ok.error is None
    mixed = notification_result(
        [
            ChannelResult(channel="email", success=True),
            ChannelResult(channel="slack", success=False, error="HTTP 404 Not Found"),
            ChannelResult(channel="webhook", success=False, error="timed out after 10 s"),
        ]
    )
    assert not mixed.success
    assert mixed.error == "not sent to slack (HTTP 404 Not Found); webhook (timed out after 10 s)"
    assert mixed.output == "sent to email"
    assert mixed.data is not None and mixed.data["channels"][1] == {
        "channel": "slack",
        "success": False,
        "error": "HTTP 404 Not Found",
    }
    nothing = notification_result([])
    assert not nothing.success and nothing.error is not None and "default_channels is empty" in nothing.error


def test_recipients_come_from_config_or_replace_it_from_the_context() -> None:
    assert recipients_of({}, ["ops@example.com"]) == ["ops@example.com"]
    assert recipients_of({"recipients": "dba@example.com"}, ["ops@example.com"]) == ["dba@example.com"]
    assert recipients_of({"recipients": ["a@x.example", "a@x.example", "b@x.example"]}, []) == [
        "a@x.example",
        "b@x.example",
    ]


@pytest.mark.parametrize(
    ("context", "configured", "said"),
    [
        ({}, [], "no recipients: response.notifications.email.recipients is empty"),
        ({"recipients": []}, ["ops@example.com"], "must be a non-empty list"),
        ({"recipients": {"to": "a@b.example"}}, [], "must be a non-empty list"),
        ({"recipients": ["a@b.example\r\nBcc: x@evil.example"]}, [], "[0]"),
        ({"recipients": ["Boss <boss@b.example>"]}, [], "not a plain e-mail address"),
        ({"recipients": ["a@b.example, c@d.example"]}, [], "not a plain e-mail address"),
        ({"recipients": ["a@b.example", 7]}, [], "recipients[1]: '7'"),
        ({"recipients": [f"u{i}@b.example" for i in range(51)]}, [], "more than 50"),
    ],
)
def test_recipients_are_refused_unless_plain_addresses(
    context: dict[str, Any], configured: list[str], said: str
) -> None:
    with pytest.raises(ChannelError) as raised:
        recipients_of(context, configured)
    assert said in str(raised.value)


def test_the_mail_has_one_line_subject_utf8_body_and_the_template_header() -> None:
    message = RenderedMessage(template="disk", subject="Disk on db-1 — 93%", body="Ünïcode body\n", slack="")
    mail = build_message(message, "opsresponder@example.com", ["a@x.example", "b@x.example"])
    assert mail["To"] == "a@x.example, b@x.example"
    assert mail["Subject"] == "Disk on db-1 — 93%"
    assert mail["X-OpsResponder-Template"] == "disk"
    assert mail["Message-ID"].endswith("@example.com>")
    assert mail.get_content() == "Ünïcode body\n"


def test_secrets_are_redacted_and_urls_shown_without_their_path() -> None:
    assert (
        redact("login s3cret refused (s3cret)", ["s3cret", None, ""])
        == "login [redacted] refused ([redacted])"
    )
    assert display_url("https://hooks.slack.com/services/T0/B0/XYZ?x=1") == "https://hooks.slack.com/…"
    assert display_url("http://127.0.0.1:8080/hook") == "http://127.0.0.1:8080/…"


@pytest.mark.parametrize("content", [None, "not a certificate\n"])
def test_an_unreadable_ca_file_is_a_config_error(tmp_path: Path, content: str | None) -> None:
    ca_file = tmp_path / "ca.pem"
    if content is not None:
        ca_file.write_text(content)
    with pytest.raises(ConfigError, match=r"response\.notifications\.email\.ca_file: .*ca\.pem"):
        service(email={"host": "smtp.example.com", "ca_file": str(ca_file)})
