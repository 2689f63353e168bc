"""The TLS listener: loggen over TLS, client certificates, permitted peers, and hostile clients.

Clients other than loggen are blocking `ssl` sockets run in a thread, so the loop keeps serving the
listener while they handshake.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trustme
from prometheus_client import CollectorRegistry

from opsresponder.config import SyslogTlsConfig
from opsresponder.ingest.syslog.listener import IngestError
from opsresponder.ingest.syslog.metrics import SyslogMetrics
from opsresponder.ingest.syslog.tls import PeerPolicy, SyslogTlsListener
from tests.waiting import eventually

from .conftest import ListSink, TlsFiles, fake_decode, require_tool, run_client, sample

REFUSED = "opsresponder_syslog_tls_handshakes_refused_total"

StartTls = Callable[..., Awaitable[SyslogTlsListener]]


@pytest.fixture
async def start_tls(tls_files: TlsFiles, sink: ListSink, metrics: SyslogMetrics) -> AsyncIterator[StartTls]:
    started: list[SyslogTlsListener] = []

    async def start(**overrides: Any) -> SyslogTlsListener:
        fields: dict[str, Any] = {
            "enabled": True,
            "host": "127.0.0.1",
            "port": 0,
            "cert_file": str(tls_files.cert_file),
            "key_file": str(tls_files.key_file),
        }
        fields.update(overrides)
        listener = SyslogTlsListener(SyslogTlsConfig(**fields), sink, fake_decode, metrics)
        await listener.start()
        started.append(listener)
        return listener

    yield start
    for listener in started:
        await listener.stop()


def client_context(tls_files: TlsFiles, cert: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(tls_files.ca_file))
    if cert is not None:
        context.load_cert_chain(str(cert))
    return context


def _exchange(address: tuple[str, int], context: ssl.SSLContext, data: bytes) -> str:
    """Handshake, send `data`, close the TLS session; return how that went ("closed" when clean)."""
    with socket.create_connection(address, timeout=10) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(data)
                # close_notify both ways: returns once the server has read everything and closed.
                tls.unwrap()
                return "closed"
        except ssl.SSLError as e:
            return f"ssl error: {e.reason}"
        except OSError as e:
            return f"os error: {e}"


async def exchange(address: tuple[str, int], context: ssl.SSLContext, data: bytes) -> str:
    return await asyncio.to_thread(_exchange, address, context, data)


def admin_config(tls_files: TlsFiles, **overrides: Any) -> dict[str, Any]:
    return {"ca_file": str(tls_files.ca_file), "require_client_cert": True, **overrides}


async def test_loggen_over_tls(start_tls: StartTls, sink: ListSink, registry: CollectorRegistry) -> None:
    require_tool("loggen")
    listener = await start_tls()
    _, port = listener.address
    # The ssl plugin is a stream transport of its own: loggen refuses -S next to it.
    await run_client("loggen", "--use-ssl", "-r", "50000", "-n", "300", "-Q", "127.0.0.1", str(port))
    await run_client("loggen", "-U", "-P", "-r", "50000", "-n", "300", "-Q", "127.0.0.1", str(port))
    events = await sink.wait_for(600)
    assert all(e.metadata["transport"] == "tls" for e in events)
    assert sum(1 for e in events if (e.raw or "").startswith("<38>1 ")) == 300  # the -P ones, octet-counted
    assert sample(registry, "opsresponder_syslog_messages_received_total", listener="tls") == 600
    assert sample(registry, REFUSED, reason="handshake_failed") == 0
    await eventually(lambda: sample(registry, "opsresponder_syslog_connections_active", listener="tls") == 0)


async def test_required_client_certificate(
    start_tls: StartTls, sink: ListSink, tls_files: TlsFiles, registry: CollectorRegistry
) -> None:
    listener = await start_tls(**admin_config(tls_files))
    stranger_ca = trustme.CA()

    # With TLS 1.3 a client finishes its side of the handshake before the server has checked its
    # certificate, so what a refused client sees varies (an alert, a reset, a close); what must hold is on
    # the server: the refusal is counted and nothing the client sent is received.
    await exchange(listener.address, client_context(tls_files), b"<13>no cert\n")
    unknown_ca = client_context(tls_files, tls_files.client_cert("sender.example", ca=stranger_ca).path)
    await exchange(listener.address, unknown_ca, b"<13>unknown ca\n")
    good = client_context(tls_files, tls_files.client_cert("sender.example").path)
    assert await exchange(listener.address, good, b"<13>permitted\n") == "closed"

    await sink.wait_for(1)
    await eventually(lambda: sample(registry, REFUSED, reason="no_client_certificate") == 1)
    await eventually(lambda: sample(registry, REFUSED, reason="certificate_rejected") == 1)
    assert sink.raws() == ["<13>permitted"]


async def test_permitted_peers_by_fingerprint(
    start_tls: StartTls, sink: ListSink, tls_files: TlsFiles, registry: CollectorRegistry
) -> None:
    pinned = tls_files.client_cert("pinned.example")
    other = tls_files.client_cert("other.example")
    # Upper case with colons, as `openssl x509 -fingerprint -sha256` prints it.
    fingerprint = ":".join(pinned.sha256[i : i + 2] for i in range(0, 64, 2)).upper()
    listener = await start_tls(**admin_config(tls_files, permitted_peers=[fingerprint]))

    await exchange(listener.address, client_context(tls_files, other.path), b"<13>from other\n")
    ok = await exchange(listener.address, client_context(tls_files, pinned.path), b"<13>from pinned\n")
    assert ok == "closed"

    await sink.wait_for(1)
    await eventually(lambda: sample(registry, REFUSED, reason="peer_not_permitted") == 1)
    assert sink.raws() == ["<13>from pinned"]  # the refused peer's data was never processed


async def test_permitted_peers_by_subject_alt_name(
    start_tls: StartTls, sink: ListSink, tls_files: TlsFiles, registry: CollectorRegistry
) -> None:
    listener = await start_tls(
        **admin_config(tls_files, require_client_cert=False, permitted_peers=["Router1.Example.NET"])
    )
    named = client_context(tls_files, tls_files.client_cert("router1.example.net").path)
    unnamed = client_context(tls_files, tls_files.client_cert("router2.example.net").path)

    await exchange(listener.address, unnamed, b"<13>router2\n")
    # Client certificates are optional here, but the policy needs one to match.
    await exchange(listener.address, client_context(tls_files), b"<13>anonymous\n")
    assert await exchange(listener.address, named, b"<13>router1\n") == "closed"

    await sink.wait_for(1)
    await eventually(lambda: sample(registry, REFUSED, reason="peer_not_permitted") == 1)
    await eventually(lambda: sample(registry, REFUSED, reason="no_client_certificate") == 1)
    assert sink.raws() == ["<13>router1"]


async def test_hostile_clients_are_refused_and_the_listener_survives(
    start_tls: StartTls, sink: ListSink, tls_files: TlsFiles, registry: CollectorRegistry
) -> None:
    listener = await start_tls(handshake_timeout_seconds=0.5)
    address = listener.address

    def plaintext(data: bytes) -> None:
        with socket.create_connection(address, timeout=10) as sock:
            sock.sendall(data)
            with contextlib.suppress(ConnectionResetError):  # refused with an abort
                sock.recv(1024)

    def reset_midway() -> None:
        sock = socket.create_connection(address, timeout=10)
        sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # the start of a ClientHello
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()

    def silent() -> None:
        with socket.create_connection(address, timeout=10) as sock:
            assert sock.recv(1024) == b""  # closed by the handshake timeout

    await asyncio.to_thread(plaintext, b"<13>plain syslog on the TLS port\n")
    # Not a TLS record type, so the failure is immediate rather than a wait for the rest of a "record";
    # nor a TLS version byte (0x03) after it: with one, OpenSSL reads the next two random bytes as a
    # record length and may wait for more (5 in 20,000 random payloads did), ending in a timeout instead.
    await asyncio.to_thread(plaintext, b"<\x00" + os.urandom(3999))
    await asyncio.to_thread(reset_midway)
    await asyncio.to_thread(silent)
    good = await exchange(address, client_context(tls_files), b"<13>good after hostile clients\n")
    assert good == "closed"

    await sink.wait_for(1)
    assert sink.raws() == ["<13>good after hostile clients"]
    await eventually(lambda: sample(registry, REFUSED, reason="handshake_failed") == 2)
    await eventually(lambda: sample(registry, REFUSED, reason="handshake_timeout") == 1)
    await eventually(lambda: sample(registry, REFUSED, reason="disconnected") == 1)
    await eventually(lambda: sample(registry, "opsresponder_syslog_connections_active", listener="tls") == 0)


async def test_stop_with_a_handshake_in_progress(
    start_tls: StartTls, sink: ListSink, tls_files: TlsFiles, metrics: SyslogMetrics
) -> None:
    listener = await start_tls()
    reader, writer = await asyncio.open_connection(*listener.address)
    await eventually(lambda: listener.connection_count == 1)
    await listener.stop()
    async with asyncio.timeout(10):
        assert await reader.read() == b""
    writer.close()
    await writer.wait_closed()


def test_server_context_refuses_tls_below_1_2(tls_files: TlsFiles) -> None:
    from opsresponder.ingest.syslog.tls import build_server_context

    config = SyslogTlsConfig(cert_file=str(tls_files.cert_file), key_file=str(tls_files.key_file))
    context = build_server_context(config)
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    assert context.verify_mode is ssl.CERT_NONE


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param({"cert_file": "/nonexistent/cert.pem"}, "cannot load the syslog TLS cert", id="cert"),
        pytest.param({"ca_file": "/nonexistent/ca.pem"}, "cannot load the syslog TLS CA file", id="ca"),
        pytest.param({"require_client_cert": True}, "need syslog.tls.ca_file", id="require-without-ca"),
        pytest.param({"permitted_peers": ["a.example"]}, "need syslog.tls.ca_file", id="peers-without-ca"),
    ],
)
async def test_unusable_tls_settings_stop_the_start(
    start_tls: StartTls, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(IngestError, match=message):
        await start_tls(**overrides)


async def test_taken_port_raises_ingest_error(start_tls: StartTls) -> None:
    first = await start_tls()
    _, port = first.address
    with pytest.raises(IngestError, match=rf"tls on 127\.0\.0\.1:{port}"):
        await start_tls(port=port)


def test_peer_policy_parsing() -> None:
    fingerprint = ":".join(["AB"] * 32)
    policy = PeerPolicy([fingerprint, "Host.Example.", " ", "10.0.0.1"])
    assert policy.fingerprints == {"ab" * 32}
    assert policy.names == {"host.example", "10.0.0.1"}
    assert policy.permits(b"der", {"subjectAltName": (("DNS", "HOST.example"),)})
    assert policy.permits(b"der", {"subjectAltName": (("IP Address", "10.0.0.1"),)})
    assert not policy.permits(b"der", {"subjectAltName": (("DNS", "other.example"),)})
    assert not PeerPolicy([])
