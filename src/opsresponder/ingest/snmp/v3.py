"""SNMPv3 through pysnmp: USM users, authentication, privacy, engine-ID discovery, reports, inform acks.

pysnmp is only partly typed, so everything that touches it stays in this module behind `V3Engine`, whose
interface is typed. pysnmp processes one datagram synchronously inside ``receive_message``; that lets us
learn the fate of each datagram from its observer hooks (``rfc3412.prepareDataElements:sm-failure`` carries
the USM error indication) and from our own PDU handler, without polling pysnmp's counters.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from pysnmp.carrier.asyncio.dgram import udp, udp6  # type: ignore[import-untyped]
from pysnmp.carrier.asyncio.dispatch import AsyncioDispatcher  # type: ignore[import-untyped]
from pysnmp.entity import config as pconfig  # type: ignore[import-untyped]
from pysnmp.entity import engine as pengine  # type: ignore[import-untyped,unused-ignore]
from pysnmp.error import PySnmpError  # type: ignore[import-untyped]
from pysnmp.proto import errind, rfc1902  # type: ignore[import-untyped]
from pysnmp.proto.api import v2c  # type: ignore[import-untyped]

from opsresponder.config import SnmpConfig, SnmpV3UserConfig
from opsresponder.core.errors import ConfigError
from opsresponder.ingest.snmp import metrics as m
from opsresponder.ingest.snmp.convert import Notification
from opsresponder.ingest.snmp.decode import (
    PDU_INFORM,
    PDU_V2_TRAP,
    SCALAR_TYPES,
    Pdu,
    SnmpValue,
    V3Header,
    VarBind,
    oid_str,
)

AUTH_PROTOCOLS: Final[dict[str, tuple[int, ...]]] = {
    "md5": pconfig.USM_AUTH_HMAC96_MD5,
    "sha": pconfig.USM_AUTH_HMAC96_SHA,
    "sha224": pconfig.USM_AUTH_HMAC128_SHA224,
    "sha256": pconfig.USM_AUTH_HMAC192_SHA256,
    "sha384": pconfig.USM_AUTH_HMAC256_SHA384,
    "sha512": pconfig.USM_AUTH_HMAC384_SHA512,
}
# net-snmp's "AES192"/"AES256" extend the key as in draft-blumenthal-aes-usm; the Reeder variant
# ("AES192C"/"AES256C" in net-snmp, used by Cisco) is a different key and would fail to decrypt.
PRIV_PROTOCOLS: Final[dict[str, tuple[int, ...]]] = {
    "des": pconfig.USM_PRIV_CBC56_DES,
    "aes128": pconfig.USM_PRIV_CFB128_AES,
    "aes192": pconfig.USM_PRIV_CFB192_AES_BLUMENTHAL,
    "aes256": pconfig.USM_PRIV_CFB256_AES_BLUMENTHAL,
}
SECURITY_LEVELS: Final = {1: "noAuthNoPriv", 2: "authNoPriv", 3: "authPriv"}
# RFC 3414 2.2.2: snmpEngineBoots must grow across restarts, or a sender that cached our engine time
# refuses our reports as replays. Seconds since this epoch grow without any state on disk.
_BOOTS_EPOCH: Final = 1_600_000_000
_MAX_BOOTS: Final = 2_147_483_646
# RFC 3411: an engine ID is 5 to 32 octets.
_MIN_ENGINE_ID: Final = 5
_MAX_ENGINE_ID: Final = 32
_PEN_OPSRESPONDER_FORMAT: Final = bytes.fromhex("8000000005")  # enterprise 0, format 5 (octets)

EVENT: Final = "event"
ACKNOWLEDGED: Final = "acknowledged"
DISCOVERY: Final = "discovery"
# A delivery callback returns the outcome: EVENT, or the reason the notification was dropped.
Deliver = Callable[[Notification], str]


def parse_engine_id(text: str, key: str) -> bytes:
    """Hex (optionally ``0x``-prefixed, ``:`` separated) engine ID of 5-32 octets.

    Raises:
        ConfigError: naming `key`.
    """
    clean = text.strip().lower().removeprefix("0x").replace(":", "")
    try:
        value = bytes.fromhex(clean)
    except ValueError as e:
        raise ConfigError(f"invalid configuration: {key}: {text!r} is not hex") from e
    if not _MIN_ENGINE_ID <= len(value) <= _MAX_ENGINE_ID:
        raise ConfigError(f"invalid configuration: {key}: an engine ID has 5 to 32 octets")
    return value


def default_engine_id(hostname: str) -> bytes:
    """A stable engine ID derived from the host name, used when ``snmp.engine_id`` is not set."""
    return _PEN_OPSRESPONDER_FORMAT + hashlib.sha256(hostname.encode()).digest()[:8]


def required_level(user: SnmpV3UserConfig) -> int:
    """The lowest security level accepted from `user`: what its configured keys allow, no less."""
    if user.priv_protocol is not None:
        return 3
    if user.auth_protocol is not None:
        return 2
    return 1


def _check_user(user: SnmpV3UserConfig, i: int) -> None:
    key = f"snmp.v3_users[{i}]"
    if not user.name:
        raise ConfigError(f"invalid configuration: {key}.name: empty")
    if (user.auth_protocol is None) != (user.auth_key is None):
        raise ConfigError(f"invalid configuration: {key}: auth_protocol and auth_key go together")
    if (user.priv_protocol is None) != (user.priv_key is None):
        raise ConfigError(f"invalid configuration: {key}: priv_protocol and priv_key go together")
    if user.priv_protocol is not None and user.auth_protocol is None:
        raise ConfigError(f"invalid configuration: {key}: privacy needs authentication (RFC 3414)")
    for name, secret in (("auth_key", user.auth_key), ("priv_key", user.priv_key)):
        # RFC 3414 11.2: pass phrases shorter than 8 characters are refused by every agent.
        if secret is not None and len(secret) < 8:
            raise ConfigError(f"invalid configuration: {key}.{name}: at least 8 characters")


def _varbind(name: Any, value: Any) -> VarBind:
    """A pysnmp (pyasn1) varbind as our typed `VarBind`; the type comes from the BER tag, as on the wire."""
    oid = tuple(int(arc) for arc in name)
    tag = value.tagSet[-1]
    tag_byte = tag.tagClass | tag.tagFormat | tag.tagId
    type_name = SCALAR_TYPES.get(tag_byte, "octet_string")
    typed: SnmpValue
    if type_name in ("integer", "counter32", "gauge32", "timeticks", "counter64"):
        typed = int(value)
    elif type_name == "oid":
        typed = oid_str(tuple(int(arc) for arc in value))
    elif type_name == "ip_address":
        typed = ".".join(str(b) for b in value.asOctets())
    elif type_name in ("octet_string", "opaque"):
        typed = bytes(value.asOctets())
    else:
        typed = None
    return VarBind(oid, type_name, typed)


@dataclass(slots=True)
class _Datagram:
    """What is known about the datagram pysnmp is processing right now."""

    header: V3Header
    peer: tuple[str, int]
    outcome: str | None = None
    security_engine_id: bytes | None = None


class V3Engine:
    """A pysnmp `SnmpEngine` set up as an SNMPv3 notification receiver.

    Users are registered for the receiver's own engine ID (informs: we are authoritative) and for each
    of their ``engine_ids`` (traps: the sender is authoritative and its keys are localized to its engine
    ID). pysnmp enforces the security level of informs; we enforce it for traps (pysnmp does not), so a
    user with keys cannot be impersonated by a noAuthNoPriv trap.

    Raises:
        ConfigError: (at construction) invalid user or engine ID.
    """

    def __init__(self, config: SnmpConfig, engine_id: bytes, deliver: Deliver) -> None:
        self._deliver = deliver
        self._levels: dict[str, int] = {}
        self._engine_ids: dict[str, set[bytes]] = {}
        self._current: _Datagram | None = None
        self._domain: tuple[int, ...] = udp.DOMAIN_NAME
        self._started = time.monotonic()
        self.engine_id = engine_id
        # The engine ID is set on the MIB rather than passed to SnmpEngine: given one, pysnmp persists
        # snmpEngineBoots under /tmp (leaking a file handle); our boots come from the clock instead.
        self._engine: Any = pengine.SnmpEngine()
        mib = self._engine.get_mib_builder()
        (own_id,) = mib.import_symbols("__SNMP-FRAMEWORK-MIB", "snmpEngineID")
        own_id.syntax = own_id.syntax.clone(engine_id)
        self._engine.snmpEngineID = own_id.syntax
        (boots,) = mib.import_symbols("__SNMP-FRAMEWORK-MIB", "snmpEngineBoots")
        boots.syntax = boots.syntax.clone(min(max(1, int(time.time()) - _BOOTS_EPOCH), _MAX_BOOTS))
        (self._engine_time,) = mib.import_symbols("__SNMP-FRAMEWORK-MIB", "snmpEngineTime")
        self._update_engine_time()
        for i, user in enumerate(config.v3_users):
            _check_user(user, i)
            self._add_user(user, i)
        self._engine.message_dispatcher.register_context_engine_id(
            b"", (v2c.SNMPv2TrapPDU.tagSet, v2c.InformRequestPDU.tagSet), self._process_pdu
        )
        self._engine.observer.register_observer(self._on_sm_failure, "rfc3412.prepareDataElements:sm-failure")
        self._engine.observer.register_observer(
            self._on_accepted,
            "rfc3412.prepareDataElements:confirmed",
            "rfc3412.prepareDataElements:unconfirmed",
        )

    def _add_user(self, user: SnmpV3UserConfig, i: int) -> None:
        auth = AUTH_PROTOCOLS[user.auth_protocol] if user.auth_protocol else pconfig.USM_AUTH_NONE
        priv = PRIV_PROTOCOLS[user.priv_protocol] if user.priv_protocol else pconfig.USM_PRIV_NONE
        engines = {self.engine_id}
        for j, text in enumerate(user.engine_ids):
            engines.add(parse_engine_id(text, f"snmp.v3_users[{i}].engine_ids[{j}]"))
        for engine_id in engines:
            pconfig.add_v3_user(
                self._engine,
                user.name,
                auth,
                user.auth_key,
                priv,
                user.priv_key,
                securityEngineId=rfc1902.OctetString(engine_id),
            )
        self._levels[user.name] = required_level(user)
        self._engine_ids.setdefault(user.name, set()).update(engines)

    def attach(
        self, transport: udp.UdpAsyncioTransport | udp6.Udp6AsyncioTransport, domain: tuple[int, ...]
    ) -> None:
        """Send reports and inform acknowledgements through `transport` (which we feed ourselves)."""
        dispatcher = AsyncioDispatcher()
        self._engine.register_transport_dispatcher(dispatcher)
        dispatcher.register_transport(domain, transport)
        self._domain = domain

    def close(self) -> None:
        """Stop pysnmp's timer task and release the transport (the socket is closed by its owner)."""
        dispatcher = self._engine.transport_dispatcher
        if dispatcher is not None:
            dispatcher.close_dispatcher()
            self._engine.unregister_transport_dispatcher()

    def _update_engine_time(self) -> None:
        # pysnmp freezes snmpEngineTime at import time; informs need it to advance (RFC 3414 2.2.2).
        now = int(time.monotonic() - self._started)
        if int(self._engine_time.syntax) != now:
            self._engine_time.syntax = self._engine_time.syntax.clone(now)

    def receive(self, data: bytes, peer: tuple[str, int], address: Any, header: V3Header) -> str:
        """Process one v3 datagram; returns `EVENT`, `ACKNOWLEDGED`, `DISCOVERY` or the drop reason.

        pysnmp wraps its own failures; anything else it raises escapes to the caller, which counts it.
        """
        self._update_engine_time()
        current = _Datagram(header, peer)
        self._current = current
        try:
            self._engine.message_dispatcher.receive_message(self._engine, self._domain, address, data)
        finally:
            self._current = None
        # No hook fired: pysnmp refused the message before security processing (bad header values,
        # unknown security model, undecodable parts), or accepted a PDU nobody handles.
        return current.outcome or m.MALFORMED_PACKET

    # pysnmp callbacks ------------------------------------------------------------------------------

    def _on_sm_failure(self, _engine: Any, _point: str, variables: dict[str, Any], _ctx: Any) -> None:
        current = self._current
        if current is None:
            return
        indication = variables["statusInformation"].get("errorIndication")
        current.outcome = self._classify(indication, current.header)

    def _classify(self, indication: object, header: V3Header) -> str:
        if isinstance(indication, errind.UnknownEngineID):
            # RFC 3414 4: a probe with no user and no engine ID asks for our engine ID; pysnmp reports it.
            if not header.user_name and not header.engine_id and header.flags & 0x03 == 0:
                return DISCOVERY
            return m.UNKNOWN_ENGINE_ID
        if isinstance(indication, errind.UnknownSecurityName):
            user = header.user_name.decode("utf-8", "replace")
            # pysnmp looks users up by (engine ID, name): a known name means the sender's engine is not.
            return m.UNKNOWN_ENGINE_ID if user in self._engine_ids else m.UNKNOWN_USER
        if isinstance(indication, (errind.AuthenticationFailure, errind.AuthenticationError)):
            return m.WRONG_DIGEST
        if isinstance(indication, errind.DecryptionError):
            return m.DECRYPTION_FAILURE
        if isinstance(indication, errind.NotInTimeWindow):
            return m.NOT_IN_TIME_WINDOW
        if isinstance(indication, errind.UnsupportedSecurityLevel):
            return m.UNSUPPORTED_SECURITY_LEVEL
        return m.MALFORMED_PACKET

    def _on_accepted(self, _engine: Any, _point: str, variables: dict[str, Any], _ctx: Any) -> None:
        current = self._current
        if current is None:
            return
        current.security_engine_id = bytes(variables["securityEngineId"])
        # Overwritten by _process_pdu; stays when pysnmp has no handler for the PDU type.
        current.outcome = m.UNSUPPORTED_PDU

    def _process_pdu(
        self,
        engine: Any,
        mp_model: Any,
        security_model: Any,
        security_name: Any,
        security_level: Any,
        context_engine_id: Any,
        context_name: Any,
        pdu_version: Any,
        pdu: Any,
        max_size_response: Any,
        state_reference: Any,
    ) -> None:
        current = self._current
        if current is None:
            return
        user = bytes(security_name).decode("utf-8", "replace")
        level = int(security_level)
        required = self._levels.get(user)
        if required is None:
            current.outcome = m.UNKNOWN_USER
            return
        if level < required:
            current.outcome = m.UNSUPPORTED_SECURITY_LEVEL
            return
        tag = PDU_INFORM if pdu.tagSet == v2c.InformRequestPDU.tagSet else PDU_V2_TRAP
        varbinds = tuple(_varbind(n, v) for n, v in v2c.apiPDU.get_varbinds(pdu))
        decoded = Pdu(
            tag=tag,
            request_id=int(v2c.apiPDU.get_request_id(pdu)),
            error_status=0,
            error_index=0,
            varbinds=varbinds,
        )
        notification = Notification(
            version="3",
            pdu=decoded,
            peer=current.peer,
            user=user,
            security_level=SECURITY_LEVELS.get(level, str(level)),
            security_engine_id=current.security_engine_id,
            context_engine_id=bytes(context_engine_id),
            context_name=bytes(context_name).decode("utf-8", "replace"),
        )
        outcome = self._deliver(notification)
        current.outcome = outcome
        # Acknowledge only what the intake took: an unacknowledged inform is retried by its sender.
        if tag == PDU_INFORM and outcome == EVENT:
            response = v2c.apiPDU.get_response(pdu)
            v2c.apiPDU.set_error_status(response, 0)
            v2c.apiPDU.set_error_index(response, 0)
            v2c.apiPDU.set_varbinds(response, v2c.apiPDU.get_varbinds(pdu))
            try:
                engine.message_dispatcher.return_response_pdu(
                    engine,
                    mp_model,
                    security_model,
                    security_name,
                    security_level,
                    context_engine_id,
                    context_name,
                    pdu_version,
                    response,
                    max_size_response,
                    state_reference,
                    {},
                )
            except PySnmpError:
                # The event is in the intake; the sender will retry and the duplicate is folded by dedup.
                return
            current.outcome = ACKNOWLEDGED
