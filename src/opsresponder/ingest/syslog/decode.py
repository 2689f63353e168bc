"""From one syslog message's bytes to an `Event`: format detection, field mapping, parsing rules.

Detection, in order:

1. ``CEF:`` or ``LEEF:`` at the very start: a bare CEF/LEEF event (no syslog envelope).
2. ``<PRI>1 ``: RFC 5424 (`rfc5424`).
3. Anything else: RFC 3164 and its variants (`rfc3164`), which reads whatever it is given.

Then, if the MSG of the envelope starts with ``CEF:`` or ``LEEF:`` (after an optional tag), it is parsed as
such. The event is filled as follows:

=================  ==============================================================================
field              value
=================  ==============================================================================
source             the decoder's ``source`` (``syslog``)
source_type        ``syslog``
event_type         ``syslog``; ``cef`` / ``leef`` for those formats (so trigger rules can take security
                   feeds without a metadata path); a parsing rule's ``event_type`` when one matches
severity           RFC 5424/3164: PRI severity (the Cisco mnemonic's digit when there is one); CEF: header
                   severity; LEEF: ``sev``; CEF/LEEF fall back to PRI severity. Tables: `severity_map`
title              first line of the MSG, at most 200 characters; CEF: Name; LEEF: ``Vendor Product:
                   EventID``; never empty (falls back to the app name, then ``syslog message``)
description        the MSG (for CEF/LEEF the whole CEF/LEEF text; unparsed: the whole text)
host               HOSTNAME of the message; CEF: ``dvchost``/``dvc`` when the envelope has none; else the
                   peer's address without port
service            APP-NAME / TAG; CEF and LEEF: the device product
occurred_at        the message timestamp in UTC (CEF ``rt``/``start``, LEEF ``devTime`` first), else
                   ``received_at``
raw                the whole decoded text, framing leftovers included (invalid UTF-8 and NUL replaced
                   by U+FFFD)
=================  ==============================================================================

Metadata (keys absent when the message has no such field):

- Always: ``peer`` (``"10.0.0.5:514"`` or None), ``transport``, ``format`` (``rfc5424`` | ``rfc3164`` |
  ``cef`` | ``leef`` | ``unparsed``), ``facility`` (name, ``user`` when there is no PRI), ``syslog_severity``
  (name).
- RFC 5424: ``app_name``, ``procid``, ``msgid``, ``structured_data`` = ``{sd_id: {param: value}}`` (a
  repeated param is a list), ``timestamp_error``.
- RFC 3164: ``app_name`` (the TAG), ``procid`` (the PID), ``cisco`` = ``{"sequence": 123, "facility":
  "LINK", "severity": 3, "mnemonic": "UPDOWN"}`` (each key only when present).
- CEF: ``envelope`` (``rfc5424`` | ``rfc3164`` | ``none``) plus that envelope's keys, and ``cef`` =
  ``{"version": 0, "device_vendor", "device_product", "device_version", "signature_id", "name",
  "severity" (as sent), "extension": {key: value}}``.
- LEEF: ``envelope`` plus its keys, and ``leef`` = ``{"version": "1.0", "device_vendor", "device_product",
  "device_version", "event_id", "delimiter", "attributes": {key: value}}``.
- Parsing rules: the extracted fields, ``parsing_rule`` = ``{"index": 0, "pattern": "..."}``.
- Failures: ``parse_error`` (a short reason). A message that cannot be parsed at all has format
  ``unparsed``, event_type ``syslog``, the whole text as description, the peer as host and PRI severity if
  it had a readable PRI. A CEF/LEEF payload that cannot be read inside a good envelope keeps the envelope's
  fields, its format and event_type ``syslog``, and gets ``parse_error`` (``"cef: ..."``). Parsing rules
  still run on both, so a rule can type what the parsers could not.

Text is sanitised once, here: trailing CR, LF and NUL (framing leftovers) are removed from the text that is
parsed, and NUL characters anywhere become U+FFFD, because PostgreSQL text and jsonb cannot store NUL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from opsresponder.config import ParsingRuleConfig
from opsresponder.core.clock import as_utc
from opsresponder.core.event import Event
from opsresponder.core.severity import Severity
from opsresponder.ingest.syslog.cef import parse_cef
from opsresponder.ingest.syslog.leef import parse_device_time, parse_leef
from opsresponder.ingest.syslog.rfc3164 import parse_rfc3164
from opsresponder.ingest.syslog.rfc5424 import parse_pri, parse_rfc5424
from opsresponder.ingest.syslog.rules import MAX_TITLE_LENGTH, CompiledRules, compile_rules
from opsresponder.ingest.syslog.severity_map import (
    DEFAULT_PRI,
    SYSLOG_SEVERITY_NAMES,
    cef_severity,
    facility_name,
    leef_severity,
    syslog_severity,
)

SOURCE_TYPE: Final = "syslog"
EVENT_TYPE_SYSLOG: Final = "syslog"
EVENT_TYPE_CEF: Final = "cef"
EVENT_TYPE_LEEF: Final = "leef"
DEFAULT_TITLE: Final = "syslog message"
_PAYLOADS: Final = ("CEF:", "LEEF:")
_FACILITY_NAMES: Final = tuple(facility_name(code) for code in range(24))


def peer_host(peer: str | None) -> str | None:
    """The address part of a peer string: ``10.0.0.5:514`` -> ``10.0.0.5``, ``[::1]:514`` -> ``::1``.

    A bare IPv6 address (more than one colon, no brackets) is returned as is.
    """
    if not peer:
        return None
    if peer.startswith("["):
        end = peer.find("]")
        return peer[1:end] if end > 0 else peer
    if peer.count(":") == 1:
        return peer.partition(":")[0] or None
    return peer


def title_from(text: str, fallback: str | None) -> str:
    """A short title: the first non-empty line of `text`, at most `MAX_TITLE_LENGTH` characters."""
    if text:
        line = text
        cut = text.find("\n")
        if cut >= 0:
            line = text[:cut]
        if len(line) > MAX_TITLE_LENGTH:
            line = line[:MAX_TITLE_LENGTH]
        line = line.strip()
        if not line and cut >= 0:
            for candidate in text.splitlines():
                line = candidate.strip()[:MAX_TITLE_LENGTH].strip()
                if line:
                    break
        if line:
            return line
    if fallback:
        fallback = fallback.strip()[:MAX_TITLE_LENGTH].strip()
        if fallback:
            return fallback
    return DEFAULT_TITLE


class SyslogDecoder:
    """Turns one syslog message into an Event. Built once from config; `decode` is pure and never raises.

    Args:
        parsing_rules: ``syslog.parsing_rules`` from config, compiled here.
        source: the ``source`` of every event.

    Raises:
        ConfigError: a parsing rule is invalid (see `compile_rules`).
    """

    __slots__ = ("_rules", "_source")

    def __init__(self, parsing_rules: Sequence[ParsingRuleConfig], source: str = "syslog") -> None:
        self._rules: CompiledRules = compile_rules(parsing_rules)
        self._source = source

    def decode(self, data: bytes, peer: str | None, received_at: datetime, transport: str) -> Event:
        """Decode one message (one frame or datagram, framing removed).

        Args:
            data: the message bytes; invalid UTF-8 is replaced, never refused.
            peer: the sender's address as ``host:port``, or None.
            received_at: when it arrived (aware; converted to UTC).
            transport: ``udp``, ``tcp`` or ``tls``, recorded in metadata.

        Returns:
            The event, with the raw text kept. Unreadable messages come back with ``metadata.parse_error``.
        """
        if received_at.tzinfo is not UTC:
            received_at = as_utc(received_at)
        raw = data.decode("utf-8", "replace")
        text = raw.rstrip("\r\n\x00")
        if "\x00" in raw:
            raw = raw.replace("\x00", "\ufffd")
            text = text.replace("\x00", "\ufffd")
        metadata: dict[str, Any] = {"peer": peer, "transport": transport}
        try:
            event = self._parse(text, raw, peer, received_at, metadata)
        except ValueError as exc:
            event = self._unparsed(text, raw, peer, received_at, metadata, str(exc))
        self._rules.apply(event)
        return event

    def _parse(
        self, text: str, raw: str, peer: str | None, received_at: datetime, metadata: dict[str, Any]
    ) -> Event:
        if not text or text.isspace():
            raise ValueError("empty message")
        if text.startswith(_PAYLOADS):
            return self._payload(
                text, raw, None, None, received_at, peer, metadata, DEFAULT_PRI, DEFAULT_PRI & 7, "none"
            )
        pri, pos = parse_pri(text)
        app_name: str | None
        if pri >= 0 and text.startswith("1 ", pos):
            message5424 = parse_rfc5424(text)
            envelope = "rfc5424"
            hostname, timestamp, body = message5424.hostname, message5424.timestamp, message5424.message
            app_name = message5424.app_name
            severity_code = pri & 7
            if app_name is not None:
                metadata["app_name"] = app_name
            if message5424.procid is not None:
                metadata["procid"] = message5424.procid
            if message5424.msgid is not None:
                metadata["msgid"] = message5424.msgid
            if message5424.structured_data:
                metadata["structured_data"] = message5424.structured_data
            if message5424.timestamp_error is not None:
                metadata["timestamp_error"] = message5424.timestamp_error
        else:
            message3164 = parse_rfc3164(text, received_at)
            envelope = "rfc3164"
            hostname, timestamp, body = message3164.hostname, message3164.timestamp, message3164.message
            app_name = message3164.app_name
            if pri < 0:
                pri = DEFAULT_PRI
            severity_code = pri & 7
            if app_name is not None:
                metadata["app_name"] = app_name
            if message3164.procid is not None:
                metadata["procid"] = message3164.procid
            cisco = message3164.cisco
            if cisco is not None:
                metadata["cisco"] = cisco
                severity_code = cisco.get("severity", severity_code)
        if body.startswith(_PAYLOADS):
            return self._payload(
                body, raw, hostname, timestamp, received_at, peer, metadata, pri, severity_code, envelope
            )
        metadata["format"] = envelope
        metadata["facility"] = _FACILITY_NAMES[pri >> 3]
        metadata["syslog_severity"] = SYSLOG_SEVERITY_NAMES[severity_code]
        return self._syslog_event(
            body, raw, hostname, peer, timestamp, received_at, metadata, severity_code, app_name
        )

    def _syslog_event(
        self,
        body: str,
        raw: str,
        hostname: str | None,
        peer: str | None,
        timestamp: datetime | None,
        received_at: datetime,
        metadata: dict[str, Any],
        severity_code: int,
        app_name: str | None,
    ) -> Event:
        """A plain syslog event (no CEF/LEEF payload, or one that failed while its envelope was fine)."""
        return Event(
            source=self._source,
            source_type=SOURCE_TYPE,
            event_type=EVENT_TYPE_SYSLOG,
            severity=syslog_severity(severity_code),
            title=title_from(body, app_name),
            description=body,
            host=hostname or peer_host(peer),
            service=app_name,
            occurred_at=timestamp or received_at,
            received_at=received_at,
            metadata=metadata,
            raw=raw,
        )

    def _payload(
        self,
        body: str,
        raw: str,
        hostname: str | None,
        timestamp: datetime | None,
        received_at: datetime,
        peer: str | None,
        metadata: dict[str, Any],
        pri: int,
        severity_code: int,
        envelope: str,
    ) -> Event:
        """A CEF or LEEF event in `body`, inside `envelope` (``none`` when bare).

        `severity_code` is the envelope's syslog severity, used when the payload has none that maps.
        """
        metadata["facility"] = _FACILITY_NAMES[pri >> 3]
        metadata["syslog_severity"] = SYSLOG_SEVERITY_NAMES[severity_code]
        severity: Severity | None
        service: str | None
        try:
            if body.startswith("CEF:"):
                cef = parse_cef(body)
                extension = cef.extension
                metadata["cef"] = {
                    "version": cef.version,
                    "device_vendor": cef.device_vendor,
                    "device_product": cef.device_product,
                    "device_version": cef.device_version,
                    "signature_id": cef.signature_id,
                    "name": cef.name,
                    "severity": cef.severity,
                    "extension": extension,
                }
                payload_format, event_type = "cef", EVENT_TYPE_CEF
                severity = cef_severity(cef.severity)
                title = title_from(cef.name, cef.signature_id)
                service = cef.device_product or None
                hostname = hostname or extension.get("dvchost") or extension.get("dvc")
                device_time = extension.get("rt") or extension.get("start")
                if device_time is not None:
                    timestamp = parse_device_time(device_time) or timestamp
            else:
                leef = parse_leef(body)
                attributes = leef.attributes
                metadata["leef"] = {
                    "version": leef.version,
                    "device_vendor": leef.device_vendor,
                    "device_product": leef.device_product,
                    "device_version": leef.device_version,
                    "event_id": leef.event_id,
                    "delimiter": leef.delimiter,
                    "attributes": attributes,
                }
                payload_format, event_type = "leef", EVENT_TYPE_LEEF
                sev = attributes.get("sev")
                severity = leef_severity(sev) if sev is not None else None
                title = title_from(
                    f"{leef.device_vendor} {leef.device_product}: {leef.event_id}", leef.event_id
                )
                service = leef.device_product or None
                device_time = attributes.get("devTime")
                if device_time is not None:
                    parsed = parse_device_time(device_time, attributes.get("devTimeFormat"))
                    if parsed is None:
                        metadata["timestamp_error"] = f"devTime {device_time[:40]!r} not understood"
                    timestamp = parsed or timestamp
        except ValueError as exc:
            if envelope == "none":
                raise
            # The envelope was fine: keep what it gave, and say what was wrong with the payload.
            metadata["format"] = envelope
            metadata["parse_error"] = f"{body[:4].rstrip(':').lower()}: {exc}"
            app_name = metadata.get("app_name")
            return self._syslog_event(
                body, raw, hostname, peer, timestamp, received_at, metadata, severity_code, app_name
            )
        metadata["format"] = payload_format
        metadata["envelope"] = envelope
        return Event(
            source=self._source,
            source_type=SOURCE_TYPE,
            event_type=event_type,
            severity=severity or syslog_severity(severity_code),
            title=title,
            description=body,
            host=hostname or peer_host(peer),
            service=service,
            occurred_at=timestamp or received_at,
            received_at=received_at,
            metadata=metadata,
            raw=raw,
        )

    def _unparsed(
        self,
        text: str,
        raw: str,
        peer: str | None,
        received_at: datetime,
        metadata: dict[str, Any],
        reason: str,
    ) -> Event:
        """The event of a message no parser could read: raw text kept, reason in ``parse_error``."""
        pri, _ = parse_pri(text)
        if pri < 0:
            pri = DEFAULT_PRI
        # Keep only what every event has: fields a parser added before failing may be half-read.
        for key in list(metadata):
            if key not in ("peer", "transport"):
                del metadata[key]
        metadata["format"] = "unparsed"
        metadata["facility"] = _FACILITY_NAMES[pri >> 3]
        metadata["syslog_severity"] = SYSLOG_SEVERITY_NAMES[pri & 7]
        metadata["parse_error"] = reason
        return Event(
            source=self._source,
            source_type=SOURCE_TYPE,
            event_type=EVENT_TYPE_SYSLOG,
            severity=syslog_severity(pri & 7),
            title=title_from(text, None),
            description=text,
            host=peer_host(peer),
            occurred_at=received_at,
            received_at=received_at,
            metadata=metadata,
            raw=raw,
        )
