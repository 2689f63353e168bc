"""Per-trap cost of the SNMP receiver's datagram path, on this machine.

Feeds the same datagram N times into `SnmpTrapReceiver.handle_datagram` (decode, community or USM check,
mapping, Event construction, sink offer, metrics) and prints microseconds per trap on the event loop; for
comparison, the cost of pysnmp's own pyasn1 decoding of the same v2c message. v3 messages (captured from
net-snmp's snmptrap when it is installed) are processed by the v3 worker process: for them it prints the
loop's CPU per trap (header check, hand-off, result, event, offer) and the worker's throughput, feeding
1,000 at a time and waiting for the answers. Run: ``python bench/snmp_decode.py [N]``.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import sys
import time
from typing import Any

from prometheus_client import CollectorRegistry
from pyasn1.codec.ber import decoder, encoder  # type: ignore[import-untyped]
from pysnmp.proto import rfc1902  # type: ignore[import-untyped]
from pysnmp.proto.api import v1, v2c  # type: ignore[import-untyped]

from opsresponder.config import SnmpConfig, SnmpV3UserConfig
from opsresponder.core.event import Event
from opsresponder.ingest.snmp import SnmpMetrics, SnmpTrapReceiver

SENDER_ENGINE_ID = "0x8000000001020304"
IF = (1, 3, 6, 1, 2, 1, 2, 2, 1)


class NullSink:
    def offer(self, event: Event) -> bool:
        return True

    async def put(self, event: Event) -> None:
        return None


def v2c_link_down() -> bytes:
    pdu = v2c.SNMPv2TrapPDU()
    v2c.apiTrapPDU.set_defaults(pdu)
    v2c.apiPDU.set_varbinds(
        pdu,
        [
            ((1, 3, 6, 1, 2, 1, 1, 3, 0), rfc1902.TimeTicks(12345)),
            ((1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0), rfc1902.ObjectName("1.3.6.1.6.3.1.1.5.3")),
            ((*IF, 1, 2), rfc1902.Integer32(2)),
            ((*IF, 2, 2), rfc1902.OctetString(b"eth0")),
            ((*IF, 7, 2), rfc1902.Integer32(1)),
            ((*IF, 8, 2), rfc1902.Integer32(2)),
        ],
    )
    msg = v2c.Message()
    v2c.apiMessage.set_defaults(msg)
    v2c.apiMessage.set_community(msg, "public")
    v2c.apiMessage.set_pdu(msg, pdu)
    return bytes(encoder.encode(msg))


def v1_link_down() -> bytes:
    pdu = v1.TrapPDU()
    v1.apiTrapPDU.set_defaults(pdu)
    v1.apiTrapPDU.set_agent_address(pdu, "10.0.0.1")
    v1.apiTrapPDU.set_generic_trap(pdu, 2)
    v1.apiTrapPDU.set_varbinds(pdu, [((*IF, 1, 2), v1.Integer(2)), ((*IF, 2, 2), v1.OctetString(b"eth0"))])
    msg = v1.Message()
    v1.apiMessage.set_defaults(msg)
    v1.apiMessage.set_community(msg, "public")
    v1.apiMessage.set_pdu(msg, pdu)
    return bytes(encoder.encode(msg))


async def capture_v3(level_args: list[str]) -> bytes | None:
    if shutil.which("snmptrap") is None:
        return None
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        target = f"127.0.0.1:{sock.getsockname()[1]}"
        proc = await asyncio.create_subprocess_exec(
            "snmptrap", *level_args, "-e", SENDER_ENGINE_ID, target, "", "1.3.6.1.6.3.1.1.5.3",
            "1.3.6.1.2.1.2.2.1.1.2", "i", "2", "1.3.6.1.2.1.2.2.1.2.2", "s", "eth0",
        )  # fmt: skip
        await proc.wait()
        async with asyncio.timeout(10):
            data, _ = await loop.sock_recvfrom(sock, 65535)
    return data


def per_call_us(fn: Any, n: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


async def through_worker(
    receiver: SnmpTrapReceiver, data: bytes, peer: tuple[str, int], n: int
) -> tuple[float, float]:
    """This process's CPU per trap, and traps per second through the worker process."""
    cpu, wall = time.process_time(), time.perf_counter()
    fed = 0
    while fed < n:
        chunk = min(1000, n - fed)  # under the worker's backlog bound: none is dropped
        for _ in range(chunk):
            receiver.handle_datagram(data, peer)
        fed += chunk
        await receiver.settled()
    return (time.process_time() - cpu) / n * 1e6, n / (time.perf_counter() - wall)


async def main(n: int) -> None:
    users = [
        SnmpV3UserConfig(
            name="alice", auth_protocol="sha", auth_key="alice-auth-pass", priv_protocol="aes128",
            priv_key="alice-priv-pass", engine_ids=[SENDER_ENGINE_ID],
        ),
        SnmpV3UserConfig(
            name="bob", auth_protocol="sha", auth_key="bob-auth-pass", engine_ids=[SENDER_ENGINE_ID]
        ),
    ]  # fmt: skip
    config = SnmpConfig(host="127.0.0.1", port=0, engine_id="80001f8880aabbccddeeff0011", v3_users=users)
    registry = CollectorRegistry()
    receiver = SnmpTrapReceiver(config, NullSink(), SnmpMetrics(registry))
    await receiver.start()
    peer = ("127.0.0.1", 40000)
    bob = ["-v3", "-u", "bob", "-l", "authNoPriv", "-a", "SHA", "-A", "bob-auth-pass"]
    alice = ["-v3", "-u", "alice", "-l", "authPriv", "-a", "SHA", "-A", "alice-auth-pass"]
    alice += ["-x", "AES", "-X", "alice-priv-pass"]
    cases: dict[str, bytes | None] = {
        "v1 trap": v1_link_down(),
        "v2c trap": v2c_link_down(),
        "v3 authNoPriv SHA trap": await capture_v3(bob),
        "v3 authPriv SHA/AES trap": await capture_v3(alice),
    }
    print(f"{'datagram path (decode + event + offer)':45} {'us/trap':>9} {'traps/s/core':>13}")
    for name, data in cases.items():
        if data is None:
            print(f"{name:45} {'skipped (net-snmp snmptrap not installed)':>23}")
            continue
        if name.startswith("v3"):
            loop_us, worker_rate = await through_worker(receiver, data, peer, n)
            print(f"{name:45} {loop_us:9.1f} {1e6 / loop_us:13.0f}  on the loop; worker {worker_rate:,.0f}/s")
            continue
        us = per_call_us(lambda d=data: receiver.handle_datagram(d, peer), n)
        print(f"{name:45} {us:9.1f} {1e6 / us:13.0f}")
    v2 = cases["v2c trap"]
    us = per_call_us(lambda: decoder.decode(v2, asn1Spec=v2c.Message()), max(1, n // 10))
    print(f"{'for comparison: one pyasn1 decode of v2c':45} {us:9.1f} {1e6 / us:13.0f}")
    dropped = sum(s.value for f in registry.collect() for s in f.samples if s.name.endswith("dropped_total"))
    print(f"drops during the run: {dropped:.0f}")
    await receiver.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000))
