"""Any bytes into the receiver's datagram path: never an exception, always exactly one counted outcome."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsresponder.ingest.snmp.metrics import DROP_REASONS

from .conftest import Harness

PEER = ("127.0.0.1", 40000)
# Prefixes that get past the first checks: a SEQUENCE holding a v1, v2c or v3 version field.
PREFIXES = [
    b"",
    b"\x30\x81\x90\x02\x01\x00",
    b"\x30\x81\x90\x02\x01\x01\x04\x06public",
    b"\x30\x81\x90\x02\x01\x03",
]


async def test_arbitrary_bytes_never_raise(make_receiver: Callable[..., Harness]) -> None:
    harness = make_receiver()
    await harness.receiver.start()
    sent = 0

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(prefix=st.sampled_from(PREFIXES), body=st.binary(max_size=300))
    def feed(prefix: bytes, body: bytes) -> None:
        nonlocal sent
        harness.receiver.handle_datagram(prefix + body, PEER)
        sent += 1

    try:
        feed()
        await harness.receiver.settled()  # v3 datagrams that reached the worker process
        received = sum(
            harness.metric("opsresponder_snmp_traps_received_total", version=v)
            for v in ("1", "2c", "3", "unknown")
        )
        dropped = sum(harness.dropped(reason) for reason in DROP_REASONS)
        discoveries = harness.metric("opsresponder_snmp_engine_discoveries_total")
        assert received == sent == dropped + discoveries
        assert harness.dropped("internal_error") == 0
        # Random bytes are malformed; the rare well-formed ones are refused for what they lack.
        assert harness.dropped("malformed_packet") > sent / 2
        assert harness.sink.events == []
    finally:
        await harness.receiver.stop()
