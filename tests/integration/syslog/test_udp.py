"""The UDP listener against real senders (util-linux logger, syslog-ng loggen) and raw sockets."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from opsresponder.config import SyslogListenerConfig
from opsresponder.core.event import Event
from opsresponder.ingest.syslog.listener import IngestError
from opsresponder.ingest.syslog.metrics import SyslogMetrics
from opsresponder.ingest.syslog.udp import RMEM_SYSCTL, SyslogUdpListener, set_receive_buffer
from tests.waiting import eventually

from .conftest import ListSink, fake_decode, require_tool, run_client, sample


def udp_config(**overrides: object) -> SyslogListenerConfig:
    fields: dict[str, object] = {"host": "127.0.0.1", "port": 0, "recv_buffer_bytes": 1024 * 1024}
    fields.update(overrides)
    return SyslogListenerConfig(**fields)  # type: ignore[arg-type]


@pytest.fixture
async def listener(sink: ListSink, metrics: SyslogMetrics) -> AsyncIterator[SyslogUdpListener]:
    listener = SyslogUdpListener(udp_config(), sink, fake_decode, metrics)
    await listener.start()
    yield listener
    await listener.stop()


def send(listener: SyslogUdpListener, *datagrams: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        for datagram in datagrams:
            client.sendto(datagram, listener.address)


async def test_logger_rfc3164_and_rfc5424(listener: SyslogUdpListener, sink: ListSink) -> None:
    require_tool("logger")
    _, port = listener.address
    base = [
        "logger",
        "--server",
        "127.0.0.1",
        "--port",
        str(port),
        "--udp",
        "-t",
        "opstest",
        "-p",
        "auth.err",
    ]
    await run_client(*base, "--rfc3164", "Failed password for root from 10.1.2.3 port 22")
    await run_client(*base, "--rfc5424", "--msgid", "ID47", "Out of disk space on /var")
    events = await sink.wait_for(2)
    old, new = sorted(events, key=lambda e: "ID47" in (e.raw or ""))
    assert (old.raw or "").startswith("<35>")  # auth (4) * 8 + err (3)
    assert "opstest" in (old.raw or "")
    assert (old.raw or "").endswith("Failed password for root from 10.1.2.3 port 22")
    assert (new.raw or "").startswith("<35>1 ")
    assert "ID47" in (new.raw or "")
    assert (new.raw or "").endswith("Out of disk space on /var")
    for event in events:
        assert event.host == "127.0.0.1"
        assert event.metadata["peer"].startswith("127.0.0.1:")
        assert event.metadata["transport"] == "udp"


async def test_loggen_datagrams(
    listener: SyslogUdpListener, sink: ListSink, registry: CollectorRegistry
) -> None:
    require_tool("loggen")
    _, port = listener.address
    await run_client("loggen", "--inet", "--dgram", "-r", "2000", "-n", "200", "-Q", "127.0.0.1", str(port))
    events = await sink.wait_for(200)
    assert all("seq: " in (e.raw or "") for e in events)
    assert sample(registry, "opsresponder_syslog_messages_received_total", listener="udp") == 200
    assert sample(registry, "opsresponder_syslog_messages_parsed_total", listener="udp") == 200


async def test_loggen_syslog_protocol_datagrams(listener: SyslogUdpListener, sink: ListSink) -> None:
    require_tool("loggen")
    _, port = listener.address
    await run_client("loggen", "-D", "-P", "-r", "2000", "-n", "50", "-Q", "127.0.0.1", str(port))
    events = await sink.wait_for(50)
    # loggen puts an octet count in front of each datagram: it is not part of the message.
    assert all((e.raw or "").startswith("<38>1 ") for e in events)


async def test_trailing_terminators_are_stripped_and_empty_datagrams_counted(
    listener: SyslogUdpListener, sink: ListSink, registry: CollectorRegistry
) -> None:
    send(listener, b"<13>one\n", b"<13>two\x00", b"", b"\n\x00", b"<13>three\r\n")
    events = await sink.wait_for(3)
    assert sorted(sink.raws()) == ["<13>one", "<13>three", "<13>two"]
    assert len(events) == 3
    assert sample(registry, "opsresponder_syslog_messages_dropped_total", listener="udp", reason="empty") == 2


async def test_oversized_datagram_is_kept_truncated(
    sink: ListSink, metrics: SyslogMetrics, registry: CollectorRegistry
) -> None:
    listener = SyslogUdpListener(udp_config(max_message_bytes=480), sink, fake_decode, metrics)
    await listener.start()
    try:
        send(listener, b"<13>" + b"x" * 2000, b"<13>small")
        events = await sink.wait_for(2)
    finally:
        await listener.stop()
    big = next(e for e in events if len(e.raw or "") > 100)
    assert big.raw == "<13>" + "x" * 476
    assert big.metadata["truncated"] is True
    assert "truncated" not in next(e for e in events if e.raw == "<13>small").metadata
    assert sample(registry, "opsresponder_syslog_messages_truncated_total", listener="udp") == 1


async def test_full_intake_drops_are_counted(metrics: SyslogMetrics, registry: CollectorRegistry) -> None:
    sink = ListSink(capacity=3)  # no consumer: the fourth event finds the intake full
    listener = SyslogUdpListener(udp_config(), sink, fake_decode, metrics)
    await listener.start()
    try:
        send(listener, *[f"<13>m{i}".encode() for i in range(10)])
        received = "opsresponder_syslog_messages_received_total"
        await eventually(lambda: sample(registry, received, listener="udp") == 10)
        dropped = "opsresponder_syslog_messages_dropped_total"
        assert sample(registry, dropped, listener="udp", reason="intake_full") == 7
        assert sink.refused == 7
    finally:
        await listener.stop()


async def test_a_raising_decoder_keeps_the_message_and_the_listener(
    sink: ListSink, metrics: SyslogMetrics, registry: CollectorRegistry
) -> None:
    def broken(data: bytes, peer: str | None, received_at: datetime, transport: str) -> Event:
        if b"boom" in data:
            raise ValueError("decoder bug")
        return fake_decode(data, peer, received_at, transport)

    listener = SyslogUdpListener(udp_config(), sink, broken, metrics)
    await listener.start()
    try:
        with capture_logs() as logs:
            send(listener, b"<13>boom one", b"<13>boom two", b"<13>fine")
            events = await sink.wait_for(3)
    finally:
        await listener.stop()
    failed = [e for e in events if "boom" in (e.raw or "")]
    assert len(failed) == 2
    assert all("ValueError: decoder bug" in e.metadata["parse_error"] for e in failed)
    assert all(e.host == "127.0.0.1" and e.event_type == "syslog" for e in failed)
    assert sample(registry, "opsresponder_syslog_messages_parse_failed_total", listener="udp") == 2
    assert sample(registry, "opsresponder_syslog_messages_parsed_total", listener="udp") == 1
    assert len([entry for entry in logs if entry["log_level"] == "error"]) == 1  # once, not per message


async def test_garbage_does_not_stop_the_listener(listener: SyslogUdpListener, sink: ListSink) -> None:
    send(listener, *[os.urandom(n) for n in (1, 7, 512, 1400, 9000)])
    send(listener, b"\xff\xfe\x00\x01", b"<999999999999>", b"<13>good after garbage")
    await sink.wait_for(1)
    await _wait_for_raw(sink, "<13>good after garbage")


async def _wait_for_raw(sink: ListSink, raw: str) -> None:
    while raw not in sink.raws():
        await sink.wait_for(len(sink.events) + 1)


async def test_taken_port_raises_ingest_error(
    listener: SyslogUdpListener, sink: ListSink, metrics: SyslogMetrics
) -> None:
    _, port = listener.address
    second = SyslogUdpListener(udp_config(port=port), sink, fake_decode, metrics)
    with pytest.raises(IngestError, match=rf"udp on 127\.0\.0\.1:{port}"):
        await second.start()


async def test_address_before_start_raises(sink: ListSink, metrics: SyslogMetrics) -> None:
    with pytest.raises(IngestError, match="not started"):
        _ = SyslogUdpListener(udp_config(), sink, fake_decode, metrics).address


def test_receive_buffer_smaller_than_asked_logs_one_warning_naming_the_sysctl() -> None:
    rmem_max = Path("/proc/sys/net/core/rmem_max")
    if not rmem_max.exists():
        pytest.skip("not Linux: no net.core.rmem_max")
    requested = int(rmem_max.read_text()) * 4
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, capture_logs() as logs:
        granted = set_receive_buffer(sock, requested, allow_force=False)
    assert granted < requested
    warnings = [entry for entry in logs if entry["log_level"] == "warning"]
    assert len(warnings) == 1
    assert warnings[0]["sysctl"] == RMEM_SYSCTL
    assert warnings[0]["requested_bytes"] == requested


def test_receive_buffer_that_fits_logs_nothing() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, capture_logs() as logs:
        granted = set_receive_buffer(sock, 64 * 1024)
    assert granted >= 64 * 1024
    assert logs == []
