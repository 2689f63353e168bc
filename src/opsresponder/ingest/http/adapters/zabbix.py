"""Zabbix webhook media type: the JSON that the script in docs/integrations.md posts for each notification.

Endpoint: ``POST /api/v1/events/webhook/zabbix``. The body (every value may be a string, as Zabbix macros
are; unresolved macros such as ``{EVENT.RECOVERY.ID}`` or ``*UNKNOWN*`` count as absent)::

    {"source": "zabbix-prod", "zabbix_url": "https://zabbix.example.com/",
     "event": {"id": "{EVENT.ID}", "name": "{EVENT.NAME}", "severity": "{EVENT.SEVERITY}",
               "nseverity": "{EVENT.NSEVERITY}", "value": "{EVENT.VALUE}", "status": "{EVENT.STATUS}",
               "source": "{EVENT.SOURCE}", "date": "{EVENT.DATE}", "time": "{EVENT.TIME}",
               "timestamp": "<ISO 8601, computed by the script>", "recovery_id": "{EVENT.RECOVERY.ID}",
               "recovery_date": "...", "recovery_time": "...", "recovery_timestamp": "...",
               "update_status": "{EVENT.UPDATE.STATUS}", "update_action": "{EVENT.UPDATE.ACTION}",
               "update_message": "{EVENT.UPDATE.MESSAGE}", "update_user": "{USER.FULLNAME}",
               "opdata": "{EVENT.OPDATA}", "tags": [{"tag": "service", "value": "nginx"}]},
     "trigger": {"id": "{TRIGGER.ID}", "name": "{TRIGGER.NAME}", "description": "...", "url": "..."},
     "host": {"host": "{HOST.HOST}", "name": "{HOST.NAME}", "ip": "{HOST.IP}"},
     "items": [{"name": "{ITEM.NAME1}", "key": "{ITEM.KEY1}", "value": "{ITEM.VALUE1}"}]}

Required: ``event.id``, ``event.name``, a severity (``event.nseverity`` or ``event.severity``),
``event.value`` or ``event.status``, ``host.host``.

Severity (``event.nseverity`` wins when valid, because administrators can rename the severities):

================  ==========  ========
Zabbix            nseverity   Event
================  ==========  ========
Disaster          5           critical
High              4           high
Average           3           medium
Warning           2           low
Information       1           info
Not classified    0           info
================  ==========  ========

Notifications:

* problem (``value`` 1, ``update_status`` 0): state problem, the severity above.
* recovery (``value`` 0 or ``status`` RESOLVED): state resolved, severity info, ``metadata.problem_severity``
  the mapped severity. ``{EVENT.ID}`` in a recovery message is the *problem's* id, so problem and recovery
  share ``metadata.source_event_id`` and the fingerprint; ``metadata.recovery_event_id`` is the recovery's.
* update (``update_status`` 1): acknowledgements become ``event_type: acknowledgement``, any other update
  (comment, severity change, unacknowledge) ``problem_update``; severity info, state problem, a fingerprint of
  their own (so they are not deduplicated into the problem) and ``metadata.problem_fingerprint`` pointing at
  the problem's.

Other fields: ``source`` is the ``source`` parameter, else the host of ``zabbix_url``, else ``zabbix``;
``host`` is ``{HOST.HOST}`` (the technical host name; the visible name is ``metadata.host_name``);
``service`` is the ``service`` tag, else the ``application`` tag; ``event_type`` is the ``event_type`` tag,
else the key of the first item without its parameters (``system.cpu.util``), else ``zabbix_problem``;
``occurred_at`` is ``timestamp`` (or ``date`` + ``time`` read as UTC) and, for a recovery, the recovery's;
tags become ``tag:value`` (or ``tag``); item values starting with a number become
``metadata.metrics.<item key as identifier>`` (``system_cpu_util``). Fingerprint: digest of ("zabbix",
source, host, "problem", problem event id).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlsplit

import msgspec

from opsresponder.core.errors import InvalidEventError
from opsresponder.core.event import Event, EventState
from opsresponder.core.severity import Severity
from opsresponder.ingest.http.adapters._common import (
    RESOLVED_SEVERITY,
    add_metrics,
    compact_json,
    convert,
    decode_json,
    event_type_from,
    fingerprint,
    leading_number,
    metric_name,
    utc_or_none,
)

NAMED_SEVERITIES: Final = {
    "not classified": Severity.INFO,
    "information": Severity.INFO,
    "warning": Severity.LOW,
    "average": Severity.MEDIUM,
    "high": Severity.HIGH,
    "disaster": Severity.CRITICAL,
}
NUMBERED_SEVERITIES: Final = {
    "0": Severity.INFO,
    "1": Severity.INFO,
    "2": Severity.LOW,
    "3": Severity.MEDIUM,
    "4": Severity.HIGH,
    "5": Severity.CRITICAL,
}
FALLBACK_EVENT_TYPE: Final = "zabbix_problem"
SERVICE_TAGS: Final = ("service", "application")
# Zabbix leaves a macro it cannot resolve as its own text, or writes *UNKNOWN*.
_UNRESOLVED: Final = re.compile(r"^(\{[^{}]*\}|\*UNKNOWN\*)$")

_Text = str | int | float


class ZabbixTag(msgspec.Struct):
    """One entry of ``{EVENT.TAGSJSON}``."""

    tag: str
    value: str = ""


class ZabbixEventFields(msgspec.Struct, kw_only=True):
    """The ``event`` object: the event macros of the notification."""

    id: _Text
    name: str
    severity: str = ""
    nseverity: _Text = ""
    value: _Text = ""
    status: str = ""
    source: _Text = ""
    date: str = ""
    time: str = ""
    timestamp: str = ""
    recovery_id: _Text = ""
    recovery_date: str = ""
    recovery_time: str = ""
    recovery_timestamp: str = ""
    update_status: _Text = ""
    update_action: str = ""
    update_message: str = ""
    update_user: str = ""
    opdata: str = ""
    tags: list[ZabbixTag] | str | None = None


class ZabbixTrigger(msgspec.Struct, kw_only=True):
    """The ``trigger`` object."""

    id: _Text = ""
    name: str = ""
    description: str = ""
    url: str = ""


class ZabbixHost(msgspec.Struct, kw_only=True):
    """The ``host`` object: ``host`` is ``{HOST.HOST}``, ``name`` the visible ``{HOST.NAME}``."""

    host: str
    name: str = ""
    ip: str = ""


class ZabbixItem(msgspec.Struct, kw_only=True):
    """One item of the trigger expression (``{ITEM.NAME1}``, ``{ITEM.KEY1}``, ``{ITEM.VALUE1}``)."""

    name: str = ""
    key: str = ""
    value: _Text = ""


class ZabbixPayload(msgspec.Struct, kw_only=True):
    """The body the documented media type script posts."""

    event: ZabbixEventFields
    host: ZabbixHost
    trigger: ZabbixTrigger = msgspec.field(default_factory=ZabbixTrigger)
    items: list[ZabbixItem] = msgspec.field(default_factory=list)
    source: str = ""
    zabbix_url: str = ""


def _text(value: _Text | None) -> str:
    """A macro value as text; unresolved macros are empty."""
    if value is None:
        return ""
    text = value.strip() if isinstance(value, str) else str(value)
    return "" if _UNRESOLVED.match(text) else text


class ZabbixAdapter:
    """Zabbix webhook media type JSON -> one event per notification (problem, recovery or update)."""

    name = "zabbix"

    def parse(self, body: bytes, content_type: str, received_at: datetime) -> list[Event]:
        """Decode one notification.

        Raises:
            InvalidEventError: malformed JSON (field None) or a wrong field such as ``event.severity``.
        """
        del content_type  # always JSON
        document = decode_json(body)
        payload = convert(document, ZabbixPayload)
        return [self._event(payload, document, received_at)]

    def _event(self, payload: ZabbixPayload, document: object, received_at: datetime) -> Event:
        ev = payload.event
        event_id = _require(ev.id, "event.id")
        title = _require(ev.name, "event.name")
        host = _require(payload.host.host, "host.host")
        source = _text(payload.source) or urlsplit(_text(payload.zabbix_url)).hostname or "zabbix"
        severity = _severity(ev)
        tags = _tags(ev.tags)
        tag_values = {tag.tag: tag.value for tag in tags}
        service = next((tag_values[t] for t in SERVICE_TAGS if tag_values.get(t)), None)
        first_key = _text(payload.items[0].key) if payload.items else ""
        event_type = event_type_from(
            tag_values.get("event_type") or first_key.split("[", 1)[0], FALLBACK_EVENT_TYPE
        )
        problem_fingerprint = fingerprint("zabbix", source, host, "problem", event_id)
        metadata: dict[str, Any] = {
            "source_event_id": event_id,
            "recovery_event_id": _text(ev.recovery_id),
            "event_source": _text(ev.source),
            "zabbix_severity": _text(ev.severity),
            "trigger_id": _text(payload.trigger.id),
            "trigger_name": _text(payload.trigger.name),
            "trigger_url": _text(payload.trigger.url),
            "zabbix_url": _text(payload.zabbix_url),
            "opdata": _text(ev.opdata),
            "host_name": _text(payload.host.name),
            "host_ip": _text(payload.host.ip),
            "tags": [{"tag": tag.tag, "value": tag.value} for tag in tags],
            "items": [
                {"name": _text(i.name), "key": _text(i.key), "value": _text(i.value)} for i in payload.items
            ],
        }
        event = Event(
            source=source,
            source_type=self.name,
            event_type=event_type,
            severity=severity,
            title=title,
            description=_text(payload.trigger.description) or None,
            occurred_at=received_at,
            received_at=received_at,
            host=host,
            service=service,
            tags=[f"{tag.tag}:{tag.value}" if tag.value else tag.tag for tag in tags],
            raw=compact_json(document),
            fingerprint=problem_fingerprint,
        )
        if _text(ev.update_status) == "1":
            _as_update(event, ev, metadata, problem_fingerprint)
        elif _is_recovery(ev):
            event.state = EventState.RESOLVED
            event.severity = RESOLVED_SEVERITY
            metadata["problem_severity"] = severity.value
            event.occurred_at = (
                _when(ev.recovery_timestamp, ev.recovery_date, ev.recovery_time, "event.recovery_timestamp")
                or received_at
            )
        else:
            event.occurred_at = _when(ev.timestamp, ev.date, ev.time, "event.timestamp") or received_at
        metadata = {key: value for key, value in metadata.items() if value not in ("", [])}
        add_metrics(metadata, _metrics(payload.items))
        event.metadata = metadata
        return event


def _require(value: _Text, field: str) -> str:
    text = _text(value)
    if not text:
        raise InvalidEventError("Required field is missing or empty.", field)
    return text


def _severity(ev: ZabbixEventFields) -> Severity:
    number = _text(ev.nseverity)
    if number:
        severity = NUMBERED_SEVERITIES.get(number)
        if severity is None:
            raise InvalidEventError(
                f"Unknown Zabbix severity number {number!r}; expected 0-5.", "event.nseverity"
            )
        return severity
    name = _text(ev.severity)
    severity = NAMED_SEVERITIES.get(name.lower())
    if severity is None:
        raise InvalidEventError(
            f"Unknown Zabbix severity {name!r}; expected Not classified, Information, Warning, Average, High "
            "or Disaster (or send event.nseverity).",
            "event.severity",
        )
    return severity


def _is_recovery(ev: ZabbixEventFields) -> bool:
    value = _text(ev.value)
    if value in ("0", "1"):
        return value == "0"
    status = _text(ev.status).upper()
    if status in ("PROBLEM", "RESOLVED", "OK"):
        return status != "PROBLEM"
    raise InvalidEventError(
        "Expected event.value 0 or 1 (or event.status PROBLEM or RESOLVED).", "event.value"
    )


def _as_update(event: Event, ev: ZabbixEventFields, metadata: dict[str, Any], problem_fp: str) -> None:
    """Turn the event into an update notification: its own type and fingerprint, linked to the problem."""
    action = _text(ev.update_action)
    message = _text(ev.update_message)
    acknowledged = "acknowledged" in action and "unacknowledged" not in action
    event.event_type = "acknowledgement" if acknowledged else "problem_update"
    metadata.update(
        problem_severity=event.severity.value,
        problem_fingerprint=problem_fp,
        update_action=action,
        update_message=message,
        update_user=_text(ev.update_user),
    )
    event.severity = Severity.INFO
    event.description = message or event.description
    # A new comment is news, a repeated one within the dedup window is not: the message is part of it.
    event.fingerprint = fingerprint(problem_fp, event.event_type, action, message)


def _when(timestamp: str, date: str, time: str, field: str) -> datetime | None:
    """The ISO 8601 ``timestamp`` the script computed, else ``date`` + ``time`` read as UTC."""
    if _text(timestamp):
        try:
            parsed = msgspec.convert(timestamp.strip(), datetime)
        except msgspec.ValidationError as e:
            raise InvalidEventError(f"Expected an ISO 8601 timestamp, got {timestamp!r}.", field) from e
        return utc_or_none(parsed, field)
    if not (_text(date) and _text(time)):
        return None
    date_field = field.replace("timestamp", "date")
    try:
        parsed = datetime.strptime(f"{date.strip()} {time.strip()}", "%Y.%m.%d %H:%M:%S")
    except ValueError as e:
        raise InvalidEventError(
            f"Expected yyyy.mm.dd and hh:mm:ss, got {date!r} {time!r}.", date_field
        ) from e
    return utc_or_none(parsed, date_field)


def _tags(value: list[ZabbixTag] | str | None) -> list[ZabbixTag]:
    """``{EVENT.TAGSJSON}`` arrives parsed (the documented script) or as its JSON text."""
    if value is None or isinstance(value, list):
        return value or []
    if not _text(value):
        return []
    try:
        return msgspec.json.decode(value, type=list[ZabbixTag])
    except (msgspec.DecodeError, RecursionError) as e:
        raise InvalidEventError("Expected a JSON array of {tag, value} objects.", "event.tags") from e


def _metrics(items: list[ZabbixItem]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for item in items:
        number = leading_number(_text(item.value))
        name = metric_name(_text(item.key) or _text(item.name))
        if number is not None and name:
            metrics.setdefault(name, number)
    return metrics
