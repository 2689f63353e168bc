"""Syslog over TLS (RFC 5425): the TCP listener behind a TLS 1.2+ handshake, with a client policy.

How TLS is run, and why: the server socket is plain TCP and each connection runs TLS itself, through an
``ssl.SSLObject`` over two memory BIOs, inside its `asyncio.Protocol` callbacks. The alternatives were worse:

- ``create_server(ssl=...)``: a failed handshake never reaches the protocol (``connection_made`` only runs
  after success), so refusals could be neither counted nor logged by reason.
- ``loop.start_tls()`` from ``connection_made``: the bytes a client sends before ``start_tls`` takes over the
  transport must not reach our protocol, and whether they do depends on the loop (uvloop starts reading
  right after ``connection_made``, and the ClientHello was lost in testing); it also costs a task per
  connection.

With memory BIOs the behaviour is the same on asyncio and uvloop, every failure is an exception in our own
callback (counted in ``opsresponder_syslog_tls_handshakes_refused_total{reason}``, never left to the loop's
exception handler), and pausing the raw transport is all backpressure needs.

``permitted_peers`` is checked in the callback that completes the handshake, before a single decrypted byte
is read: the ``ssl`` module has no certificate-verify callback (and asyncio's TLS layer no post-verify hook)
to refuse inside the handshake itself. A refused peer's connection is aborted with its data unread.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import ssl
from typing import Any, Final

import structlog

from opsresponder.config import SyslogTlsConfig
from opsresponder.core.clock import Clock, utcnow
from opsresponder.core.sink import EventSink
from opsresponder.ingest.syslog.listener import DecodeFn, IngestError
from opsresponder.ingest.syslog.metrics import SyslogMetrics
from opsresponder.ingest.syslog.tcp import StreamConnection, StreamListener

log = structlog.get_logger(__name__)

_READ_CHUNK_BYTES: Final = 256 * 1024
"""Plaintext taken out of the TLS layer per read call; the same size asyncio reads from a socket."""
_FINGERPRINT: Final = re.compile(r"[0-9a-f]{64}")
# Refusals an operator can act on (a sender's certificate or the policy is wrong); the others are noise from
# scanners and broken clients and are logged at debug.
_POLICY_REASONS: Final = frozenset({"certificate_rejected", "no_client_certificate", "peer_not_permitted"})
_POLICY_DETAILS: Final = {
    "no_client_certificate": "permitted_peers is set and the peer sent no certificate",
    "peer_not_permitted": "the peer's certificate matches no entry of permitted_peers",
}


class PeerPolicy:
    """``permitted_peers``: certificate SHA-256 fingerprints and subject alt names (DNS names or IPs).

    A fingerprint is 64 hex digits, colons optional, any case; every other entry is a subject alt name,
    compared case-insensitively. An empty policy permits every peer the handshake accepted.
    """

    __slots__ = ("fingerprints", "names")

    def __init__(self, entries: list[str]) -> None:
        fingerprints: set[str] = set()
        names: set[str] = set()
        for entry in entries:
            compact = entry.strip().replace(":", "").lower()
            if _FINGERPRINT.fullmatch(compact):
                fingerprints.add(compact)
            elif entry.strip():
                names.add(entry.strip().lower().rstrip("."))
        self.fingerprints = frozenset(fingerprints)
        self.names = frozenset(names)

    def __bool__(self) -> bool:
        return bool(self.fingerprints or self.names)

    def permits(self, certificate_der: bytes, certificate: dict[str, Any]) -> bool:
        """True when the peer's certificate is pinned by fingerprint or carries a permitted SAN."""
        if hashlib.sha256(certificate_der).hexdigest() in self.fingerprints:
            return True
        for kind, value in certificate.get("subjectAltName", ()):
            if kind in ("DNS", "IP Address") and str(value).lower().rstrip(".") in self.names:
                return True
        return False


def build_server_context(config: SyslogTlsConfig) -> ssl.SSLContext:
    """The server's TLS context: TLS 1.2 minimum, the configured certificate, client certificates per config.

    With ``ca_file``, client certificates are requested and verified against it (required with
    ``require_client_cert``, optional otherwise); without it, none are requested.

    Raises:
        IngestError: a file cannot be loaded, or client certificates are needed without ``ca_file``.
    """
    if not config.cert_file or not config.key_file:
        raise IngestError("syslog over TLS needs syslog.tls.cert_file and syslog.tls.key_file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # A sender has no reason to renegotiate; a TLS 1.2 client doing it in a loop is a CPU attack.
    context.options |= ssl.OP_NO_RENEGOTIATION
    try:
        context.load_cert_chain(config.cert_file, config.key_file)
    except OSError as e:  # ssl.SSLError included: a key that does not match, a file that is not PEM
        raise IngestError(
            f"cannot load the syslog TLS certificate {config.cert_file} with key {config.key_file}: {e}"
        ) from e
    if config.ca_file:
        try:
            context.load_verify_locations(cafile=config.ca_file)
        except OSError as e:
            raise IngestError(f"cannot load the syslog TLS CA file {config.ca_file}: {e}") from e
        context.verify_mode = ssl.CERT_REQUIRED if config.require_client_cert else ssl.CERT_OPTIONAL
    elif config.require_client_cert or config.permitted_peers:
        # Only a certificate verified against a CA can be matched: the ssl module cannot request a client
        # certificate without verifying it.
        raise IngestError(
            "syslog.tls.require_client_cert and syslog.tls.permitted_peers need syslog.tls.ca_file"
        )
    return context


def refusal_reason(error: BaseException) -> str:
    """The ``reason`` label for a handshake that failed with `error`."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return "certificate_rejected"
    if isinstance(error, ssl.SSLError):
        if error.reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
            return "no_client_certificate"
        return "handshake_failed"
    return "handshake_failed"


class SyslogTlsListener(StreamListener):
    """Receives syslog over TLS (RFC 5425; octet counting, but any RFC 6587 framing is accepted).

    TLS 1.2 is the minimum. With ``ca_file``, client certificates are verified; ``require_client_cert``
    makes them mandatory; ``permitted_peers`` further restricts peers by certificate fingerprint or subject
    alt name. Every refused peer is counted by reason in ``opsresponder_syslog_tls_handshakes_refused_total``
    and never gets a byte processed. Backpressure, framing and idle timeout are those of the TCP listener.

    Raises:
        IngestError: from `start`, when the address cannot be bound or the TLS files cannot be loaded.
    """

    def __init__(
        self,
        config: SyslogTlsConfig,
        sink: EventSink,
        decode: DecodeFn,
        metrics: SyslogMetrics,
        clock: Clock = utcnow,
    ) -> None:
        super().__init__("tls", config, sink, decode, metrics, clock)
        self.config = config
        self.policy = PeerPolicy(config.permitted_peers)
        self._context: ssl.SSLContext | None = None

    @property
    def context(self) -> ssl.SSLContext:
        if self._context is None:
            raise IngestError("the syslog tls listener is not started")
        return self._context

    def _prepare(self) -> None:
        # Before binding: a TLS listener that cannot load its certificate must not accept connections.
        self._context = build_server_context(self.config)

    def _make_connection(self) -> StreamConnection:
        return _TlsConnection(self)

    def refuse(self, connection: StreamConnection, reason: str, detail: str) -> None:
        self.metrics.handshake_refused(reason)
        self.unregister(connection)
        level = log.warning if reason in _POLICY_REASONS else log.debug
        level("Syslog TLS peer refused.", peer=connection.peer, reason=reason, detail=detail)

    def check_peer(self, tls: ssl.SSLObject) -> str | None:
        """None when the peer of a completed handshake is permitted, else the refusal reason."""
        if not self.policy:
            return None
        der = tls.getpeercert(binary_form=True)
        if not der:
            return "no_client_certificate"
        return None if self.policy.permits(der, tls.getpeercert() or {}) else "peer_not_permitted"


class _TlsConnection(StreamConnection):
    """A stream connection that runs TLS over memory BIOs and reads nothing before its peer is admitted.

    The handshake advances in ``data_received``; the peer policy is checked in the same callback that
    completes it, before a decrypted byte is read out of the BIO. ``_transport`` stays the raw TCP transport,
    so pausing it (backpressure) and closing it work as for TCP.
    """

    def __init__(self, listener: SyslogTlsListener) -> None:
        super().__init__(listener)
        self._tls_listener = listener
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = listener.context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._handshaking = True
        self._handshake_timer: asyncio.TimerHandle | None = None

    def _begin(self) -> None:
        timeout = self._tls_listener.config.handshake_timeout_seconds
        self._handshake_timer = self._loop.call_later(timeout, self._handshake_timed_out)

    def data_received(self, data: bytes) -> None:
        self._incoming.write(data)
        if self._handshaking and not self._advance_handshake():
            return
        self._read_plaintext()

    def eof_received(self) -> bool:
        if self._handshaking:
            self._refuse("disconnected", "the peer closed the connection during the handshake", abort=False)
            return False
        return super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_handshake_timer()
        if self._handshaking:
            # A reset mid-handshake is the peer giving up; a close by us (stop, refusal) was counted already.
            if exc is not None:
                self._tls_listener.refuse(self, "disconnected", str(exc) or type(exc).__name__)
            self._handshaking = False
        super().connection_lost(exc)

    def close(self) -> None:
        if not self._handshaking and not self._closed:
            # close_notify tells the sender nothing was cut; it need not answer, so only our half is sent.
            with contextlib.suppress(ssl.SSLError):  # SSLWantReadError: waiting for theirs, which is fine
                self._tls.unwrap()
            self._flush_outgoing()
        super().close()

    def _advance_handshake(self) -> bool:
        """Run the handshake on what arrived; True once it is complete and the peer is admitted."""
        try:
            self._tls.do_handshake()
        except ssl.SSLWantReadError:
            self._flush_outgoing()
            return False
        except ssl.SSLError as e:
            self._flush_outgoing()  # the alert tells an honest client what went wrong
            self._refuse(refusal_reason(e), e.reason or str(e), abort=False)
            return False
        self._flush_outgoing()
        self._handshaking = False
        self._cancel_handshake_timer()
        reason = self._tls_listener.check_peer(self._tls)
        if reason is not None:
            self._refuse(reason, _POLICY_DETAILS[reason], abort=True)
            return False
        self._start_idle_timer()
        return True

    def _read_plaintext(self) -> None:
        while not self._closed and self._transport is not None and not self._transport.is_closing():
            try:
                data = self._tls.read(_READ_CHUNK_BYTES)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                data = b""
            except ssl.SSLError as e:
                log.debug(
                    "Syslog TLS connection broken by the peer.", peer=self.peer, error=e.reason or str(e)
                )
                self.abort()
                return
            if not data:
                # close_notify (the ssl module reports it as an empty read): the sender is done, as with EOF.
                self._deliver(self._framer.flush())
                self.close()
                return
            self._receive(data)
        self._flush_outgoing()  # post-handshake messages: TLS 1.3 session tickets, key updates

    def _flush_outgoing(self) -> None:
        if self._outgoing.pending and self._transport is not None and not self._transport.is_closing():
            self._transport.write(self._outgoing.read())

    def _handshake_timed_out(self) -> None:
        self._handshake_timer = None
        if self._handshaking and not self._closed:
            timeout = self._tls_listener.config.handshake_timeout_seconds
            self._refuse("handshake_timeout", f"no complete handshake within {timeout}s", abort=True)

    def _refuse(self, reason: str, detail: str, *, abort: bool) -> None:
        self._handshaking = False
        self._cancel_handshake_timer()
        self._tls_listener.refuse(self, reason, detail)
        if self._transport is None:
            return
        if abort:
            self._transport.abort()  # nothing this peer sent is read, and nothing more is sent to it
        else:
            self._transport.close()  # after the alert already written, if any

    def _cancel_handshake_timer(self) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
