"""The TCP listener against real senders (util-linux logger, syslog-ng loggen) and raw sockets."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from opsresponder.config import SyslogListenerConfig
from opsresponder.core.errors import OpsResponderError
from opsresponder.core.event import Event
from opsresponder.ingest.syslog.listener import IngestError
from opsresponder.ingest.syslog.metrics import SyslogMetrics
from opsresponder.ingest.syslog.tcp import SyslogTcpListener
from tests.waiting import eventually

from .conftest import ListSink, fake_decode, require_tool, run_client, sample

SEQ = re.compile(r"seq: (\d+)")


def tcp_config(**overrides: Any) -> SyslogListenerConfig:
    fields: dict[str, Any] = {"host": "127.0.0.1", "port": 0}
    fields.update(overrides)
    return SyslogListenerConfig(**fields)


@pytest.fixture
async def listener(sink: ListSink, metrics: SyslogMetrics) -> AsyncIterator[SyslogTcpListener]:
    listener = SyslogTcpListener(tcp_config(), sink, fake_decode, metrics)
    await listener.start()
    yield listener
    await listener.stop()


async def send(address: tuple[str, int], *chunks: bytes) -> None:
    """Connect, write each chunk as its own write (drained, Nagle off), close cleanly."""
    _, writer = await asyncio.open_connection(*address)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for chunk in chunks:
        writer.write(chunk)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


def reset(address: tuple[str, int], data: bytes) -> None:
    """Send `data` then abort the connection with a RST instead of a FIN."""
    sock = socket.create_connection(address)
    sock.sendall(data)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def octet(message: bytes) -> bytes:
    return str(len(message)).encode() + b" " + message


def seqs(sink: ListSink) -> list[int]:
    return [int(m.group(1)) for raw in sink.raws() if (m := SEQ.search(raw))]


@pytest.mark.parametrize(
    ("flags", "framing"),
    [
        pytest.param(["--rfc3164"], "lf", id="rfc3164-lf"),
        pytest.param(["--rfc5424"], "lf", id="rfc5424-lf"),
        pytest.param(["--rfc5424", "--octet-count"], "octet", id="rfc5424-octet-count"),
        pytest.param(["--rfc3164", "--octet-count"], "octet", id="rfc3164-octet-count"),
    ],
)
async def test_logger_over_tcp(
    listener: SyslogTcpListener, sink: ListSink, flags: list[str], framing: str
) -> None:
    require_tool("logger")
    _, port = listener.address
    lines = b"first line from stdin\nsecond line\nthird line\n"
    argv = ["logger", "-n", "127.0.0.1", "-P", str(port), "--tcp", "-t", "opstest", "-p", "daemon.warning"]
    await run_client(*argv, *flags, stdin=lines)
    events = await sink.wait_for(3)
    assert [(e.raw or "").rsplit(" ", 2)[-2:] for e in events] == [
        ["from", "stdin"],
        ["second", "line"],
        ["third", "line"],
    ]
    for event in events:
        assert (event.raw or "").startswith("<28>")  # daemon (3) * 8 + warning (4)
        assert "opstest" in (event.raw or "")
        assert event.host == "127.0.0.1"
        assert event.metadata["transport"] == "tcp"


@pytest.mark.parametrize("flags", [[], ["-P"]], ids=["bsd-lf", "syslog-protocol-octet"])
async def test_loggen_over_tcp(
    listener: SyslogTcpListener, sink: ListSink, registry: CollectorRegistry, flags: list[str]
) -> None:
    require_tool("loggen")
    _, port = listener.address
    await run_client("loggen", "-S", *flags, "-r", "50000", "-n", "1000", "-Q", "127.0.0.1", str(port))
    await sink.wait_for(1000)
    assert seqs(sink) == list(range(1000))
    assert sample(registry, "opsresponder_syslog_messages_received_total", listener="tcp") == 1000
    await eventually(lambda: listener.connection_count == 0)
    assert sample(registry, "opsresponder_syslog_connections_active", listener="tcp") == 0


async def test_mixed_framing_split_across_writes(listener: SyslogTcpListener, sink: ListSink) -> None:
    stream = (
        octet(b"<13>1 - h app - - - counted one")
        + b"<13>lf line\n"
        + b"<13>nul terminated\x00"
        + b"<13>crlf terminated\r\n"
        + octet(b"<13>counted two")
        + b"\n"
    )
    cuts = [0, 1, 2, 3, 10, 33, 34, 35, 50, 70, 71, 90, len(stream)]
    await send(listener.address, *[stream[a:b] for a, b in itertools.pairwise(cuts)])
    await sink.wait_for(5)
    assert sink.raws() == [
        "<13>1 - h app - - - counted one",
        "<13>lf line",
        "<13>nul terminated",
        "<13>crlf terminated",
        "<13>counted two",
    ]


async def test_byte_by_byte_sender(listener: SyslogTcpListener, sink: ListSink) -> None:
    stream = octet(b"<13>slow counted") + b"<13>slow lf\n"
    await send(listener.address, *[stream[i : i + 1] for i in range(len(stream))])
    await sink.wait_for(2)
    assert sink.raws() == ["<13>slow counted", "<13>slow lf"]


async def test_oversized_frames_are_kept_truncated_and_framing_resumes(
    sink: ListSink, metrics: SyslogMetrics, registry: CollectorRegistry
) -> None:
    listener = SyslogTcpListener(tcp_config(max_message_bytes=480), sink, fake_decode, metrics)
    await listener.start()
    try:
        # The oversized bodies contain framing look-alikes that must be skipped, not parsed as frames (an
        # LF-framed body cannot contain LF, by definition, so it carries counts and NUL-free text only).
        counted = b"<13>" + b"12 <13>inside\n" * 200
        lf = b"<13>" + b"12 <13>inside " * 200
        await send(listener.address, octet(counted), b"<13>after counted\n", lf + b"\n", b"<13>after lf\n")
        events = await sink.wait_for(4)
    finally:
        await listener.stop()
    assert (
        [e.raw for e in events]
        == [
            counted[:480].decode().rstrip("\n"),  # trailing terminators are never part of a message
            "<13>after counted",
            lf[:480].decode(),
            "<13>after lf",
        ]
    )
    for big in events[0::2]:
        assert big.metadata["truncated"] is True
    assert sample(registry, "opsresponder_syslog_messages_truncated_total", listener="tcp") == 2


async def test_many_concurrent_connections(
    listener: SyslogTcpListener, sink: ListSink, registry: CollectorRegistry
) -> None:
    async def client(n: int) -> None:
        await send(listener.address, *[f"<13>client {n} message {i}\n".encode() for i in range(20)])

    async with asyncio.TaskGroup() as group:
        for n in range(50):
            group.create_task(client(n))
    await sink.wait_for(1000)
    for n in range(50):
        mine = [raw for raw in sink.raws() if raw.startswith(f"<13>client {n} ")]
        assert mine == [f"<13>client {n} message {i}" for i in range(20)]  # in order per connection
    await eventually(lambda: sample(registry, "opsresponder_syslog_connections_active", listener="tcp") == 0)


async def test_backpressure_pauses_reading_and_loses_nothing(
    metrics: SyslogMetrics, registry: CollectorRegistry
) -> None:
    require_tool("loggen")
    sink = ListSink(capacity=10)
    sink.start_consumer(delay=0.0002)
    listener = SyslogTcpListener(tcp_config(), sink, fake_decode, metrics)
    await listener.start()
    try:
        _, port = listener.address
        argv = ["loggen", "-S", "-r", "1000000", "-n", "2000", "-Q", "127.0.0.1", str(port)]
        await run_client(*argv, within=60)
        await sink.wait_for(2000, within=60)
    finally:
        await listener.stop()
        await sink.stop_consumer()
    assert seqs(sink) == list(range(2000))
    assert sample(registry, "opsresponder_syslog_reads_paused_total", listener="tcp") >= 1
    assert sink.refused == 0
    dropped = "opsresponder_syslog_messages_dropped_total"
    assert not [s for m in registry.collect() for s in m.samples if s.name == dropped]


async def test_garbage_and_abrupt_disconnects_do_not_hurt_the_listener(
    listener: SyslogTcpListener, sink: ListSink
) -> None:
    address = listener.address
    reset(address, os.urandom(3000))
    reset(address, b"99999 <13>a counted frame that never ends")
    reset(address, b"")
    await send(address, os.urandom(5000))
    await send(address, b"\x00\x00\xff\xfe" * 100)
    await send(address, b"<13>good after garbage\n")
    while "<13>good after garbage" not in sink.raws():
        await sink.wait_for(len(sink.events) + 1)
    # The frame cut by the reset is kept, marked truncated (bytes are missing).
    await eventually(lambda: any(e.metadata.get("truncated") for e in sink.events))
    await eventually(lambda: listener.connection_count == 0)


async def test_idle_connections_are_closed(sink: ListSink, metrics: SyslogMetrics) -> None:
    listener = SyslogTcpListener(tcp_config(idle_timeout_seconds=0.2), sink, fake_decode, metrics)
    await listener.start()
    try:
        reader, writer = await asyncio.open_connection(*listener.address)
        writer.write(b"<13>then silence\n")
        async with asyncio.timeout(10):
            assert await reader.read() == b""  # the server closed the connection
        writer.close()
        await writer.wait_closed()
        await sink.wait_for(1)
    finally:
        await listener.stop()


async def test_connections_beyond_max_are_refused_and_counted(
    sink: ListSink, metrics: SyslogMetrics, registry: CollectorRegistry
) -> None:
    listener = SyslogTcpListener(tcp_config(max_connections=2), sink, fake_decode, metrics)
    await listener.start()
    try:
        kept = [await asyncio.open_connection(*listener.address) for _ in range(2)]
        await eventually(lambda: listener.connection_count == 2)
        reader, writer = await asyncio.open_connection(*listener.address)
        async with asyncio.timeout(10):
            # Refused with an abort: a reset is as good as a close.
            with contextlib.suppress(ConnectionResetError):
                assert await reader.read() == b""
        writer.close()
        refused = "opsresponder_syslog_connections_refused_total"
        assert sample(registry, refused, listener="tcp", reason="max_connections") == 1
        for _, kept_writer in kept:
            kept_writer.write(b"<13>still served\n")
            kept_writer.close()
        await sink.wait_for(2)
    finally:
        await listener.stop()


async def test_stop_closes_connections_and_keeps_what_was_received(
    sink: ListSink, metrics: SyslogMetrics
) -> None:
    listener = SyslogTcpListener(tcp_config(), sink, fake_decode, metrics)
    await listener.start()
    reader, writer = await asyncio.open_connection(*listener.address)
    writer.write(b"<13>complete\n<13>unterminated last line")
    await writer.drain()
    await sink.wait_for(1)
    await listener.stop()
    assert sink.raws() == ["<13>complete", "<13>unterminated last line"]
    async with asyncio.timeout(10):
        assert await reader.read() == b""
    writer.close()
    await writer.wait_closed()
    with pytest.raises(IngestError, match="not started"):
        _ = listener.address


async def test_stop_counts_what_the_sink_never_took(
    metrics: SyslogMetrics, registry: CollectorRegistry
) -> None:
    sink = ListSink(capacity=1)  # no consumer: one event fits, the feeder then waits forever
    listener = SyslogTcpListener(tcp_config(), sink, fake_decode, metrics)
    await listener.start()
    await send(listener.address, b"".join(f"<13>m{i}\n".encode() for i in range(5)))
    received = "opsresponder_syslog_messages_received_total"
    await eventually(lambda: sample(registry, received, listener="tcp") == 5)
    await listener.stop(grace_seconds=0.2)
    dropped = "opsresponder_syslog_messages_dropped_total"
    assert sample(registry, dropped, listener="tcp", reason="shutdown") == 4


class _ClosedIntakeError(OpsResponderError):
    pass


class _ClosedSink:
    def offer(self, event: Event) -> bool:
        raise AssertionError("TCP must never offer: a refused offer counts as a drop in the intake")

    async def put(self, event: Event) -> None:
        raise _ClosedIntakeError("the intake is closed")


async def test_a_closed_intake_aborts_the_connection_and_counts_the_loss(
    metrics: SyslogMetrics, registry: CollectorRegistry
) -> None:
    listener = SyslogTcpListener(tcp_config(), _ClosedSink(), fake_decode, metrics)
    await listener.start()
    try:
        reader, writer = await asyncio.open_connection(*listener.address)
        writer.write(b"<13>one\n<13>two\n")
        async with asyncio.timeout(10):
            with contextlib.suppress(ConnectionResetError):
                assert await reader.read() == b""
        writer.close()
        dropped = "opsresponder_syslog_messages_dropped_total"
        await eventually(lambda: sample(registry, dropped, listener="tcp", reason="intake_closed") == 2)
    finally:
        await listener.stop()


async def test_ipv6_peer(sink: ListSink, metrics: SyslogMetrics) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    listener = SyslogTcpListener(tcp_config(host="::1"), sink, fake_decode, metrics)
    try:
        await listener.start()
    except IngestError:
        pytest.skip("::1 cannot be bound here")
    try:
        host, port = listener.address
        assert host == "::1"
        await send((host, port), b"<13>over ipv6\n")
        (event,) = await sink.wait_for(1)
    finally:
        await listener.stop()
    assert event.metadata["peer"].startswith("[::1]:")


async def test_taken_port_raises_ingest_error(
    listener: SyslogTcpListener, sink: ListSink, metrics: SyslogMetrics
) -> None:
    _, port = listener.address
    second = SyslogTcpListener(tcp_config(port=port), sink, fake_decode, metrics)
    with pytest.raises(IngestError, match=rf"tcp on 127\.0\.0\.1:{port}"):
        await second.start()


async def test_with_the_real_decoder(metrics: SyslogMetrics, registry: CollectorRegistry) -> None:
    decode_module = pytest.importorskip("opsresponder.ingest.syslog.decode")
    require_tool("logger")
    sink = ListSink()
    decoder = decode_module.SyslogDecoder([])
    listener = SyslogTcpListener(tcp_config(), sink, decoder.decode, metrics)
    await listener.start()
    try:
        _, port = listener.address
        argv = ["logger", "-n", "127.0.0.1", "-P", str(port), "--tcp", "-t", "sshd", "-p", "auth.crit"]
        await run_client(*argv, "--rfc5424", "--octet-count", "--msgid", "LOGIN", "Out of disk space")
        await run_client(*argv, "--rfc3164", "Failed password for root from 10.9.8.7 port 22 ssh2")
        await send(listener.address, b"\xff\xfe not syslog at all \x00")
        events = await sink.wait_for(3)
    finally:
        await listener.stop()
    rfc5424, rfc3164, junk = events
    assert rfc5424.host == socket.gethostname() or rfc5424.host
    assert rfc5424.severity == "critical"
    assert rfc5424.metadata["transport"] == "tcp"
    assert rfc5424.metadata["peer"].startswith("127.0.0.1:")
    assert "Failed password" in (rfc3164.description or rfc3164.title)
    assert junk.raw is not None
    received = sample(registry, "opsresponder_syslog_messages_received_total", listener="tcp")
    parsed = sample(registry, "opsresponder_syslog_messages_parsed_total", listener="tcp")
    failed = sample(registry, "opsresponder_syslog_messages_parse_failed_total", listener="tcp")
    assert received == 3
    assert parsed + failed == 3
