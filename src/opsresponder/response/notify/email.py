"""The e-mail channel: one message per notification over SMTP (aiosmtplib), to the configured recipients.

``security``: ``starttls`` upgrades a plain connection and fails when the server does not offer STARTTLS
(never falls back to sending in clear); ``tls`` is TLS from the first byte (SMTPS, port 465); ``none``
sends in clear (a relay on localhost), credentials included. The server's certificate is verified
against the system's CAs, or only ``ca_file`` when set.

Recipients: the configured ``recipients``, unless the notification's context carries ``recipients`` (a
list of addresses, or one address): those replace the configured ones for that message. Whoever may write
response templates (the ``write`` scope) may thus choose where a message goes, as they choose what it
says; each address must be a plain ``local@domain`` (no display name, no separators, no line breaks), so
a value cannot smuggle further recipients or headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Final

import aiosmtplib

from opsresponder.config import SmtpConfig
from opsresponder.core.errors import ConfigError
from opsresponder.response.notify.base import Notification
from opsresponder.response.notify.channel import TIMEOUT, ChannelError, redact
from opsresponder.response.notify.messages import RenderedMessage

TEMPLATE_HEADER: Final = "X-OpsResponder-Template"
MAX_RECIPIENTS: Final = 50
_ADDRESS_RE: Final = re.compile(r"^[^@\s,;<>()\"\[\]\\]{1,64}@[A-Za-z0-9.\-\[\]:]{1,255}$")


class EmailChannel:
    """Sends over the configured SMTP server; one connection per message (notifications are rare)."""

    name = "email"

    def __init__(self, config: SmtpConfig) -> None:
        """Build from config.

        Raises:
            ValueError: ``host`` is null (the service reports the channel as not configured instead).
            ConfigError: ``ca_file`` cannot be read or holds no certificate.
        """
        if config.host is None:
            raise ValueError("the e-mail channel needs a host")
        self._config = config
        self._host = config.host
        self._tls: ssl.SSLContext | None = None
        if config.security != "none":
            # Built once: loading a CA bundle costs milliseconds. Only ca_file is trusted when set.
            try:
                self._tls = ssl.create_default_context(cafile=config.ca_file)
            except (OSError, ssl.SSLError) as e:
                raise ConfigError(
                    f"invalid configuration: response.notifications.email.ca_file: {config.ca_file}: "
                    f"{e.strerror or e}"
                ) from e

    async def deliver(self, message: RenderedMessage, notification: Notification) -> None:
        """Send `message` to the recipients.

        Raises:
            ChannelError: no (valid) recipient, the server refused the login, a recipient or the message,
                the connection or TLS failed, or the whole exchange took longer than ``timeout_seconds``.
        """
        config = self._config
        recipients = recipients_of(notification.context, config.recipients)
        mail = build_message(message, config.sender, recipients)
        client = aiosmtplib.SMTP(
            hostname=self._host,
            port=config.port,
            username=config.username,
            password=config.password,
            use_tls=config.security == "tls",
            start_tls=config.security == "starttls",
            tls_context=self._tls,
            timeout=config.timeout_seconds,
        )
        try:
            # aiosmtplib bounds each step; this bounds the whole exchange (connect, TLS, login, data).
            async with asyncio.timeout(config.timeout_seconds):
                await client.connect()  # and STARTTLS, and login when a username is set
                await client.send_message(mail, sender=config.sender, recipients=recipients)
            # The message is accepted: a failed or slow goodbye (bounded by aiosmtplib's own timeout)
            # changes nothing.
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.quit()
        except (TimeoutError, aiosmtplib.SMTPTimeoutError) as e:
            raise ChannelError(
                f"SMTP {self._host}:{config.port} timed out after {config.timeout_seconds:g} s", TIMEOUT
            ) from e
        except aiosmtplib.SMTPAuthenticationError as e:
            raise ChannelError(self._safe(f"SMTP login as {config.username!r} refused: {e}")) from e
        except aiosmtplib.SMTPRecipientsRefused as e:
            refused = ", ".join(r.recipient for r in e.recipients)
            raise ChannelError(f"SMTP server refused the recipients {refused}") from e
        except aiosmtplib.SMTPException as e:
            text = f"SMTP {self._host}:{config.port}: {type(e).__name__}: {e}"
            if e.__cause__ is not None:  # aiosmtplib wraps connection errors, sometimes with an empty text
                text += f" ({type(e.__cause__).__name__})"
            raise ChannelError(self._safe(text)) from e
        except OSError as e:  # refused connections, resolution errors, TLS (ssl.SSLError)
            raise ChannelError(
                self._safe(f"SMTP {self._host}:{config.port}: {type(e).__name__}: {e.strerror or e}")
            ) from e
        finally:
            # Also on a timeout or a cancellation mid-exchange, which aiosmtplib does not clean up after
            # (it closes its connection only on an Exception): the socket must not outlive the send.
            client.close()

    async def aclose(self) -> None:
        """Nothing is held open between messages."""

    def _safe(self, text: str) -> str:
        return redact(text, [self._config.password])


def recipients_of(context: dict[str, Any], configured: Sequence[str]) -> list[str]:
    """The context's ``recipients`` when present, else the configured ones.

    Raises:
        ChannelError: none at all, too many, or one that is not a plain address.
    """
    override = context.get("recipients")
    if override is None:
        chosen: list[Any] = list(configured)
        where = "response.notifications.email.recipients"
    else:
        chosen = [override] if isinstance(override, str) else override if isinstance(override, list) else []
        where = "the notification's recipients"
        if not chosen:
            raise ChannelError(f"{where} must be a non-empty list of addresses")
    if not chosen:
        raise ChannelError(f"no recipients: {where} is empty")
    if len(chosen) > MAX_RECIPIENTS:
        raise ChannelError(f"{where}: {len(chosen)} recipients, more than {MAX_RECIPIENTS}")
    for i, address in enumerate(chosen):
        if not isinstance(address, str) or not _ADDRESS_RE.fullmatch(address):
            raise ChannelError(f"{where}[{i}]: {str(address)[:100]!r} is not a plain e-mail address")
    return list(dict.fromkeys(chosen))


def build_message(message: RenderedMessage, sender: str, recipients: Sequence[str]) -> EmailMessage:
    """The MIME message: UTF-8 text (or HTML) body, one-line subject, a Message-ID and a Date."""
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = ", ".join(recipients)
    mail["Subject"] = message.subject
    mail["Date"] = formatdate(localtime=False, usegmt=True)
    mail["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "localhost")
    mail[TEMPLATE_HEADER] = message.template
    if message.format == "html":
        mail.set_content(message.body, subtype="html", charset="utf-8")
    else:
        mail.set_content(message.body, charset="utf-8")
    return mail
