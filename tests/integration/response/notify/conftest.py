"""A real SMTP server (aiosmtpd) on the test's own loop, plain, STARTTLS or implicit TLS, with optional
AUTH; a trustme CA whose certificate the client is told to trust through ``ca_file``; and the real HTTP
receiver of the subscription tests (``receiver``).

aiosmtpd's `Controller` would run the same server in a thread with a loop of its own; serving its `SMTP`
protocol with ``loop.create_server`` on the test's loop keeps the test single-threaded (no thread, no
cross-loop hand-offs) and the server's errors visible to the strict loop of tests/conftest.py.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal, cast

import pytest
import trustme
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.integration.outbound.conftest import receiver  # noqa: F401 - the subscription tests' HTTP receiver
from tests.waiting import Arrivals

LOGIN = "opsresponder"
PASSWORD = "correct-horse-battery"


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage
    tls: bool
    login: bytes | None


@dataclass
class Inbox:
    """The aiosmtpd handler: keeps every accepted message."""

    messages: Arrivals[Received] = field(default_factory=Arrivals)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        self.messages.append(
            Received(
                sender=str(envelope.mail_from),
                recipients=list(envelope.rcpt_tos),
                message=parsed,
                tls=session.ssl is not None,
                login=cast(bytes | None, session.auth_data),
            )
        )
        return "250 Message accepted for delivery"


def authenticator(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        LOGIN.encode(),
        PASSWORD.encode(),
    )
    # handled=False: aiosmtpd answers the failure itself (535); True would mean "already answered".
    return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)


@dataclass
class SmtpServer:
    port: int
    inbox: Inbox
    ca_file: str


Mode = Literal["plain", "starttls", "tls"]
StartSmtp = Callable[..., Awaitable[SmtpServer]]


@pytest.fixture(scope="session")
def smtp_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def start_smtp(smtp_ca: trustme.CA, tmp_path: Path) -> AsyncIterator[StartSmtp]:
    """Starts servers: ``await start_smtp("starttls", auth=True)``; all are closed after the test."""
    servers: list[asyncio.Server] = []
    ca_file = tmp_path / "smtp-ca.pem"
    smtp_ca.cert_pem.write_to_path(str(ca_file))
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    smtp_ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_tls)

    async def start(mode: Mode = "plain", *, auth: bool = False) -> SmtpServer:
        inbox = Inbox()

        def protocol() -> SMTP:
            return SMTP(
                inbox,
                hostname="smtp.test",
                tls_context=server_tls if mode == "starttls" else None,
                require_starttls=mode == "starttls",
                authenticator=authenticator if auth else None,
                # aiosmtpd's "is this TLS" check knows only STARTTLS: over implicit TLS, AUTH is offered
                # as if in clear, and requiring it then (a UserWarning, an error under pytest) is left out;
                # the test checks that the client logged in.
                auth_required=auth and mode == "starttls",
                auth_require_tls=mode == "starttls",
            )

        loop = asyncio.get_running_loop()
        server = await loop.create_server(protocol, "127.0.0.1", 0, ssl=server_tls if mode == "tls" else None)
        servers.append(server)
        return SmtpServer(server.sockets[0].getsockname()[1], inbox, str(ca_file))

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()
