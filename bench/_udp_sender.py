"""A paced UDP sender, run as its own process by the benchmarks: syslog RFC 5424 or SNMP v1/v2c/v3 traps.

    python bench/_udp_sender.py HOST:PORT --kind syslog|v1|v2c|v3 --rate 20000 --duration 60 [--size 300]

Sends `--rate` datagrams per second (0: as fast as it can) for `--duration` seconds, each one unique so the
service stores one event per datagram, and prints one JSON line: ``{"sent", "seconds", "rate", "errors"}``.

Why not loggen for UDP: loggen 4.x starts with a burst of one second's worth of messages (its token bucket
starts full) and then runs about 5% under the asked rate, so a run "at 40,000/s" opens with 40,000
datagrams at once; that tests the socket buffer, not the sustained rate. This sender spreads the
datagrams evenly (no burst longer than about 0.2 ms of traffic) and reports the rate it really achieved.

Why not snmptrap: it forks once per trap. Traps are built here with a small BER encoder, and the v3 ones
are authenticated (HMAC-SHA-96) and encrypted (AES-128-CFB, RFC 3826) here, one per trap, with keys
localized once (RFC 3414 A.2). Each trap is a linkDown with its own ifIndex: the service fingerprints a
linkDown by host and ifIndex, so every trap is a new event.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import secrets
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

try:
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:  # cryptography < 47, where CFB had not moved yet
    from cryptography.hazmat.primitives.ciphers.modes import CFB

# SNMP identities the benchmark configures on the service (bench/snmp.py) and uses here.
COMMUNITY = b"public"
V3_USER = "bench"
V3_AUTH_KEY = "bench-auth-pass"
V3_PRIV_KEY = "bench-priv-pass"
SENDER_ENGINE_ID = "8000000001020304"
"""Our snmpEngineID (hex): the authoritative engine of the traps we send."""

_SYS_UP_TIME = (1, 3, 6, 1, 2, 1, 1, 3, 0)
_SNMP_TRAP_OID = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)
_LINK_DOWN = (1, 3, 6, 1, 6, 3, 1, 1, 5, 3)
_IF = (1, 3, 6, 1, 2, 1, 2, 2, 1)  # ifEntry: .1 ifIndex, .2 ifDescr, .7 ifAdminStatus, .8 ifOperStatus
_ENTERPRISE = (1, 3, 6, 1, 4, 1, 8072, 3, 2, 10)  # net-snmp's Linux agent, as snmptrap sends


# BER ------------------------------------------------------------------------------------------------
def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def tlv(tag: int, body: bytes) -> bytes:
    return bytes((tag,)) + _length(len(body)) + body


def integer(value: int, tag: int = 0x02) -> bytes:
    return tlv(tag, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def unsigned(value: int, tag: int) -> bytes:
    """Counter32, Gauge32, TimeTicks: unsigned, in as few octets as keep the top bit clear."""
    return tlv(tag, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def octets(value: bytes) -> bytes:
    return tlv(0x04, value)


def oid(arcs: tuple[int, ...]) -> bytes:
    body = bytearray((40 * arcs[0] + arcs[1],))
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body += bytes(reversed(chunk))
    return tlv(0x06, bytes(body))


def sequence(*items: bytes, tag: int = 0x30) -> bytes:
    return tlv(tag, b"".join(items))


def timeticks(value: int) -> bytes:
    return unsigned(value, 0x43)


# Traps ----------------------------------------------------------------------------------------------
def _if_varbinds(if_index: int) -> list[bytes]:
    return [
        sequence(oid((*_IF, 1, if_index)), integer(if_index)),
        sequence(oid((*_IF, 2, if_index)), octets(b"GigabitEthernet0/%d" % if_index)),
        sequence(oid((*_IF, 7, if_index)), integer(1)),  # ifAdminStatus up
        sequence(oid((*_IF, 8, if_index)), integer(2)),  # ifOperStatus down
    ]


def v2c_pdu(n: int, if_index: int, uptime: int) -> bytes:
    """An SNMPv2-Trap-PDU: sysUpTime.0, snmpTrapOID.0 = linkDown, then the interface's varbinds."""
    varbinds = [
        sequence(oid(_SYS_UP_TIME), timeticks(uptime)),
        sequence(oid(_SNMP_TRAP_OID), oid(_LINK_DOWN)),
        *_if_varbinds(if_index),
    ]
    return sequence(integer(n), integer(0), integer(0), sequence(*varbinds), tag=0xA7)


def v2c_trap(n: int, if_index: int, uptime: int) -> bytes:
    return sequence(integer(1), octets(COMMUNITY), v2c_pdu(n, if_index, uptime))


def v1_trap(n: int, if_index: int, uptime: int) -> bytes:
    """A v1 Trap-PDU, generic-trap 2 (linkDown), agent-addr 127.0.0.1."""
    pdu = sequence(
        oid(_ENTERPRISE),
        tlv(0x40, bytes((127, 0, 0, 1))),  # IpAddress
        integer(2),
        integer(0),
        timeticks(uptime),
        sequence(*_if_varbinds(if_index)),
        tag=0xA4,
    )
    return sequence(integer(0), octets(COMMUNITY), pdu)


def localized_key(password: str, engine_id: bytes) -> bytes:
    """RFC 3414 A.2.2 (SHA-1): a megabyte of the repeated password hashed, then localized to the engine."""
    pw = password.encode()
    stretched = (pw * (1_048_576 // len(pw) + 1))[:1_048_576]
    ku = hashlib.sha1(stretched).digest()  # noqa: S324 - the RFC's algorithm
    return hashlib.sha1(ku + engine_id + ku).digest()  # noqa: S324


class V3AuthPriv:
    """SNMPv3 traps at security level authPriv: USM with HMAC-SHA-96 and AES-128-CFB (RFC 3414, 3826)."""

    def __init__(self, user: str, auth_password: str, priv_password: str, engine_id: bytes) -> None:
        self.user = user.encode()
        self.engine_id = engine_id
        self.auth_key = localized_key(auth_password, engine_id)
        self.priv_key = localized_key(priv_password, engine_id)[:16]
        self._marker = secrets.token_bytes(12)
        self._salt = secrets.randbits(63)

    def trap(self, n: int, if_index: int, uptime: int) -> bytes:
        # snmpEngineTime: seconds from a fixed epoch, so it only grows, also from one sender to the next.
        boots, engine_time = 1, int(time.time()) - 1_600_000_000
        self._salt += 1
        salt = self._salt.to_bytes(8, "big")
        scoped = sequence(octets(self.engine_id), octets(b""), v2c_pdu(n, if_index, uptime))
        iv = boots.to_bytes(4, "big") + engine_time.to_bytes(4, "big") + salt
        encryptor = Cipher(algorithms.AES(self.priv_key), CFB(iv)).encryptor()
        encrypted = encryptor.update(scoped) + encryptor.finalize()
        usm = sequence(
            octets(self.engine_id),
            integer(boots),
            integer(engine_time),
            octets(self.user),
            octets(self._marker),  # msgAuthenticationParameters, filled in below
            octets(salt),  # msgPrivacyParameters
        )
        flags = b"\x03"  # auth and priv; not reportable (a trap gets no answer)
        header = sequence(integer(n), integer(65507), octets(flags), integer(3))
        message = sequence(integer(3), header, octets(usm), octets(encrypted))
        at = message.index(self._marker)
        zeroed = message[:at] + bytes(12) + message[at + 12 :]
        digest = hmac.new(self.auth_key, zeroed, hashlib.sha1).digest()[:12]
        return message[:at] + digest + message[at + 12 :]


def trap_factory(kind: str) -> Callable[[int], bytes]:
    """Trap number n (0, 1, ...) of this run: a linkDown of its own ifIndex, from a random base."""
    base = secrets.randbelow(1 << 30) + 1  # ifIndex is 1..2^31-1; runs on one database do not collide
    started = time.monotonic()
    build = {"v1": v1_trap, "v2c": v2c_trap}.get(kind)
    if build is None:
        build = V3AuthPriv(V3_USER, V3_AUTH_KEY, V3_PRIV_KEY, bytes.fromhex(SENDER_ENGINE_ID)).trap

    def make(n: int) -> bytes:
        return build(n + 1, base + n, int((time.monotonic() - started) * 100) + 100)

    return make


# Syslog ---------------------------------------------------------------------------------------------
def syslog_factory(size: int) -> Callable[[int], bytes]:
    """RFC 5424 messages of `size` bytes from 20 hosts and a few apps; the MSG (whose first line is the
    event title) starts with this run's id and the sequence number, so every message is a new event."""
    run = secrets.token_hex(4)
    stamp = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    apps = ["nginx", "sshd", "app", "haproxy", "postgres"]
    templates: list[bytes] = []
    for i in range(20):
        app = apps[i % len(apps)]
        head = (
            f"<{(16 + i % 8) * 8 + 3 + i % 4}>1 {stamp} host-{i:02d}.example.com {app} {1000 + i} ID{i} "
            f'[origin ip="10.0.0.{i + 1}" software="{app}"][bench run="{run}" seq="%010d"] '
        )
        msg = (
            f"\ufeffrun {run} seq %010d: request handled status=200 bytes=5120 upstream=10.1.0.{i} rt=0.004 "
        )
        line = (head + msg).encode()
        fill = size - (len(line) - 2 * len(b"%010d") + 2 * 10)
        templates.append(line + b"." * max(fill, 0))

    def make(n: int) -> bytes:
        return templates[n % 20] % (n, n)

    return make


# Pacing ---------------------------------------------------------------------------------------------
def paced_send(
    sock: socket.socket, make: Callable[[int], bytes], rate: float, duration: float
) -> dict[str, float]:
    """Send datagram ``make(n)`` number n at ``start + n / rate``; sleep whenever ahead of the schedule."""
    send = sock.send
    sent = errors = 0
    start = time.perf_counter()
    deadline = start + duration
    while True:
        now = time.perf_counter()
        if now >= deadline:
            break
        due = int((now - start) * rate) + 1 if rate else sent + 1000
        while sent < due:
            try:
                send(make(sent))
            except OSError:  # ENOBUFS, or ECONNREFUSED after an ICMP port unreachable
                errors += 1
            sent += 1
        if rate:
            ahead = start + sent / rate - time.perf_counter()
            if ahead > 0:
                time.sleep(max(ahead, 0.0002))
    seconds = time.perf_counter() - start
    return {"sent": sent - errors, "seconds": seconds, "rate": (sent - errors) / seconds, "errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("target", help="HOST:PORT")
    parser.add_argument("--kind", choices=["syslog", "v1", "v2c", "v3"], required=True)
    parser.add_argument("--rate", type=float, required=True, help="datagrams per second; 0: no pacing")
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--size", type=int, default=300, help="syslog message size in bytes")
    args = parser.parse_args()
    host, port = args.target.rsplit(":", 1)
    make = syslog_factory(args.size) if args.kind == "syslog" else trap_factory(args.kind)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((host.strip("[]"), int(port)))
        result = paced_send(sock, make, args.rate, args.duration)
    print(json.dumps({**result, "pid": os.getpid()}))


if __name__ == "__main__":
    main()
