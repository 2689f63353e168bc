"""The SNMPv3 worker process on its own: results in order, a bounded backlog, a clean stop."""

from __future__ import annotations

from datetime import UTC, datetime

from opsresponder.config import SnmpConfig
from opsresponder.ingest.snmp.v3 import DISCOVERY, parse_engine_id
from opsresponder.ingest.snmp.v3_offload import Pending, V3Offload
from opsresponder.ingest.snmp.v3_protocol import V3Result

from .conftest import RECEIVER_ENGINE_ID, USERS

NOW = datetime(2026, 1, 1, tzinfo=UTC)
# An SNMPv3 engine-ID discovery probe (RFC 3414 4): no user, no engine ID, reportable, an empty GetRequest.
PROBE = bytes.fromhex(
    "303b020103300f02020400020300ffe30401040201030410300e0400020100020100040004000400301304000400a00d02"
    "0358475d0201000201003000"
)


async def test_results_come_back_in_order_and_the_backlog_is_bounded() -> None:
    results: list[tuple[int, str, object]] = []
    reports: list[bytes] = []

    def on_result(result: V3Result, pending: Pending) -> None:
        results.append((result.seq, result.outcome, pending.address))
        reports.extend(result.replies)

    config = SnmpConfig(v3_users=USERS)
    offload = V3Offload(
        config, parse_engine_id(RECEIVER_ENGINE_ID, "engine_id"), False, on_result, max_in_flight=3
    )
    await offload.start()
    try:
        accepted = [offload.submit(PROBE, ("127.0.0.1", 1000 + i), NOW) for i in range(4)]
        assert accepted == [True, True, True, False]  # the fourth waits for nobody: dropped by the caller
        assert offload.in_flight == 3
        await offload.settled()
        assert [seq for seq, _, _ in results] == [1, 2, 3]
        assert [address for _, _, address in results] == [("127.0.0.1", 1000 + i) for i in range(3)]
        assert all(outcome == DISCOVERY for _, outcome, _ in results)
        assert len(reports) == 3  # each probe is answered with a Report carrying our engine ID
        assert all(bytes.fromhex(RECEIVER_ENGINE_ID) in r for r in reports)
        assert offload.submit(PROBE, ("127.0.0.1", 2000), NOW)  # room again
        await offload.settled()
    finally:
        await offload.stop()
    assert offload.worker_pid is None
    assert not offload.submit(PROBE, ("127.0.0.1", 3000), NOW)  # stopped: refused, not lost silently
