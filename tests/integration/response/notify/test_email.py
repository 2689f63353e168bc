"""The e-mail channel against a real SMTP server (aiosmtpd): plain, STARTTLS, implicit TLS, AUTH."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import msgspec
import pytest
import structlog.testing
from prometheus_client import CollectorRegistry

from opsresponder.config import NotificationsConfig
from opsresponder.outbound.allowlist import UrlAllowlist
from opsresponder.response.notify.base import Notification
from opsresponder.response.notify.messages import MessageTemplate, MessageTemplates, TemplateSpec
from opsresponder.response.notify.metrics import NotificationMetrics
from opsresponder.response.notify.service import NotificationService
from tests.integration.response.notify.conftest import LOGIN, PASSWORD, Inbox, SmtpServer, StartSmtp

CONTEXT = {"event": {"host": "web-01", "title": "CPU at 97%", "severity": "high"}}


def templates() -> MessageTemplates:
    spec = TemplateSpec(
        subject="[{{ event.severity | upper }}] CPU on {{ event.host }}",
        body="{{ event.title }} on {{ event.host }}.\nGrüße, OpsResponder",
    )
    return MessageTemplates({"cpu": MessageTemplate("cpu", "test", spec)}, "test")


def notifier(
    server: SmtpServer, registry: CollectorRegistry | None = None, **email: Any
) -> NotificationService:
    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": server.port,
        "security": "none",
        "sender": "opsresponder@ops.example",
        "recipients": ["oncall@ops.example", "team@ops.example"],
        "timeout_seconds": 5,
        "ca_file": server.ca_file,
    }
    settings.update(email)
    config = msgspec.convert({"email": settings}, NotificationsConfig)
    metrics = NotificationMetrics(registry or CollectorRegistry())
    return NotificationService(config, UrlAllowlist(), templates(), metrics=metrics)


async def send(service: NotificationService, **context: Any) -> tuple[bool, str | None]:
    (result,) = await service.send(
        Notification(template="cpu", channels=("email",), context={**CONTEXT, **context})
    )
    assert result.channel == "email"
    return result.success, result.error


async def test_plain_smtp_delivers_subject_body_and_recipients(start_smtp: StartSmtp) -> None:
    server = await start_smtp("plain")
    registry = CollectorRegistry()
    assert await send(notifier(server, registry)) == (True, None)
    (received,) = server.inbox.messages.items
    assert received.sender == "opsresponder@ops.example"
    assert received.recipients == ["oncall@ops.example", "team@ops.example"]
    assert received.message["Subject"] == "[HIGH] CPU on web-01"
    assert received.message["To"] == "oncall@ops.example, team@ops.example"
    assert received.message["X-OpsResponder-Template"] == "cpu"
    # SMTP carries lines ending in CRLF.
    assert received.message.get_content() == "CPU at 97% on web-01.\r\nGrüße, OpsResponder\r\n"
    assert not received.tls
    sent = registry.get_sample_value(
        "opsresponder_notifications_total", {"channel": "email", "outcome": "sent"}
    )
    assert sent == 1


async def test_the_contexts_recipients_replace_the_configured_ones(start_smtp: StartSmtp) -> None:
    server = await start_smtp("plain")
    assert await send(notifier(server), recipients=["dba@ops.example"]) == (True, None)
    (received,) = server.inbox.messages.items
    assert received.recipients == ["dba@ops.example"]


async def test_starttls_with_login_trusting_the_private_ca(start_smtp: StartSmtp) -> None:
    server = await start_smtp("starttls", auth=True)
    service = notifier(server, security="starttls", username=LOGIN, password=PASSWORD)
    assert await send(service) == (True, None)
    (received,) = server.inbox.messages.items
    assert received.tls
    assert received.login == LOGIN.encode()
    assert received.message["Subject"] == "[HIGH] CPU on web-01"


async def test_a_refused_login_fails_without_showing_the_password(start_smtp: StartSmtp) -> None:
    server = await start_smtp("starttls", auth=True)
    wrong = "wrong-password-9f8e7d"
    ok, error = await send(notifier(server, security="starttls", username=LOGIN, password=wrong))
    assert not ok and error is not None
    assert "login as 'opsresponder' refused" in error
    assert wrong not in error
    assert server.inbox.messages.items == []


async def test_implicit_tls(start_smtp: StartSmtp) -> None:
    server = await start_smtp("tls", auth=True)
    service = notifier(server, security="tls", username=LOGIN, password=PASSWORD)
    assert await send(service) == (True, None)
    (received,) = server.inbox.messages.items
    assert received.login == LOGIN.encode()
    assert received.message.get_content().startswith("CPU at 97% on web-01.")


async def test_starttls_required_never_falls_back_to_clear_text(start_smtp: StartSmtp) -> None:
    server = await start_smtp("plain")
    ok, error = await send(notifier(server, security="starttls", username=LOGIN, password=PASSWORD))
    assert not ok and error is not None and "STARTTLS" in error
    assert PASSWORD not in error
    assert server.inbox.messages.items == []


async def test_a_certificate_from_an_untrusted_ca_is_refused(start_smtp: StartSmtp) -> None:
    server = await start_smtp("tls")
    # The system's CAs only: the test CA is not among them.
    ok, error = await send(notifier(server, security="tls", ca_file=None))
    assert not ok and error is not None and "CERTIFICATE_VERIFY_FAILED" in error
    assert server.inbox.messages.items == []


async def test_a_closed_port_fails_with_the_reason(start_smtp: StartSmtp) -> None:
    server = await start_smtp("plain")
    registry = CollectorRegistry()
    ok, error = await send(notifier(server, registry, port=1))
    assert not ok and error is not None and error.startswith("SMTP 127.0.0.1:1:")
    failed = registry.get_sample_value(
        "opsresponder_notifications_total", {"channel": "email", "outcome": "failed"}
    )
    assert failed == 1


@pytest.mark.parametrize("security", ["none", "starttls"])
async def test_a_server_that_never_answers_times_out(security: str) -> None:
    connections: list[asyncio.StreamWriter] = []
    finished = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        try:
            await reader.read()  # never greets; ends when the client gives up and closes
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            finished.set()

    listener = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        fake = SmtpServer(port, Inbox(), "")
        ok, error = await send(notifier(fake, security=security, ca_file=None, timeout_seconds=0.3))
        assert not ok and error == f"SMTP 127.0.0.1:{port} timed out after 0.3 s"
        await asyncio.wait_for(finished.wait(), 5)  # the client closed its connection
    finally:
        listener.close()
        await listener.wait_closed()


async def test_the_password_never_reaches_the_logs(start_smtp: StartSmtp) -> None:
    server = await start_smtp("starttls", auth=True)
    with structlog.testing.capture_logs() as logs:
        await send(notifier(server, security="starttls", username=LOGIN, password="hunter2-secret"))
        await send(notifier(server, security="none", port=1, username=LOGIN, password="hunter2-secret"))
    assert len(logs) == 2
    assert "hunter2-secret" not in repr(logs)
