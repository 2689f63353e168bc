"""Nagios and Icinga 2 notifications, posted by a notification command with curl (JSON or form-encoded).

Endpoints: ``POST /api/v1/events/webhook/nagios`` and ``/icinga`` (``source_type`` ``nagios`` / ``icinga``).
The body carries the notification macros by their Nagios names, as a JSON object (or an array of them) or
as ``application/x-www-form-urlencoded`` fields. Names are case-insensitive and ignore ``_``, ``.`` and
a ``NAGIOS_`` / ``icinga.`` prefix, so ``HOSTNAME``, ``hostname``, ``NAGIOS_HOSTNAME`` and Icinga's
``host.name`` are the same field; Icinga's ``service.name`` counts as ``SERVICEDESC``. Unresolved macros
(``$SERVICEDESC$``) count as absent.

Fields: ``HOSTNAME`` (required), ``HOSTSTATE`` (required for a host notification), ``SERVICEDESC`` (present:
a service notification) and ``SERVICESTATE`` (then required), ``NOTIFICATIONTYPE`` (default: from the state),
``HOSTADDRESS``, ``HOSTALIAS``, ``HOSTOUTPUT``/``SERVICEOUTPUT``, ``LONGHOSTOUTPUT``/``LONGSERVICEOUTPUT``,
``HOSTPERFDATA``/``SERVICEPERFDATA``, ``LASTHOSTSTATE``/``LASTSERVICESTATE``, ``HOSTPROBLEMID``/
``SERVICEPROBLEMID`` (and ``LAST...PROBLEMID``), ``TIMET`` (epoch seconds), ``LONGDATETIME``,
``NOTIFICATIONAUTHOR``, ``NOTIFICATIONCOMMENT``, ``HOSTSTATETYPE``/``SERVICESTATETYPE``,
``HOSTATTEMPT``/``SERVICEATTEMPT``, and two optional extras: ``SOURCE`` (default ``nagios``/``icinga``)
and ``EVENTTYPE``.

States:

===========  ===========  ========  ========
Service      Host         Event     State
===========  ===========  ========  ========
CRITICAL     DOWN         critical  problem
-            UNREACHABLE  high      problem
WARNING      -            medium    problem
UNKNOWN      -            low       problem
OK           UP           info      resolved
===========  ===========  ========  ========

Notification types: PROBLEM and RECOVERY follow the state (OK/UP is a resolve, with ``LAST...STATE`` mapped
into ``metadata.problem_severity``). The others are informational events (severity info, state problem) with
their own ``event_type`` and fingerprint, and ``metadata.problem_fingerprint`` pointing at the condition's:
ACKNOWLEDGEMENT -> ``acknowledgement``; FLAPPINGSTART -> ``flapping_start``; FLAPPINGSTOP/FlappingEnd ->
``flapping_stop``; FLAPPINGDISABLED -> ``flapping_disabled``; DOWNTIMESTART -> ``downtime_start``;
DOWNTIMEEND -> ``downtime_end``; DOWNTIMECANCELLED/DowntimeRemoved -> ``downtime_cancelled``; CUSTOM ->
``custom_notification``.

Mapping: ``event_type`` is ``EVENTTYPE``, else ``SERVICEDESC`` as an identifier (``Disk /var`` ->
``disk_var``), else ``host_down`` for host notifications (also for their UP recovery). ``title`` is
``<SERVICEDESC> on <HOSTNAME> is <STATE>`` or ``<HOSTNAME> is <STATE>`` (prefixed with the notification type
when it is neither PROBLEM nor RECOVERY); ``description`` the output and long output. ``occurred_at`` is
``TIMET``, else ``received_at``. Perfdata (``load1=0.5;5;10;0 'used space'=95%;80;90``) is parsed into
``metadata.perfdata`` (every field) and ``metadata.metrics`` (``{"load1": 0.5, "used_space": 95.0}``, label
as identifier, ``/`` -> ``root``). Fingerprint: digest of (nagios|icinga, source, host, service, "state").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qs

from opsresponder.core.errors import InvalidEventError
from opsresponder.core.event import Event, EventState
from opsresponder.core.severity import Severity
from opsresponder.ingest.http.adapters._common import (
    NUMBER,
    RESOLVED_SEVERITY,
    add_metrics,
    compact_json,
    decode_json,
    event_type_from,
    fingerprint,
    finite_number,
    join_path,
    metric_name,
    type_name,
)

SERVICE_STATES: Final = {
    "CRITICAL": Severity.CRITICAL,
    "WARNING": Severity.MEDIUM,
    "UNKNOWN": Severity.LOW,
    "OK": Severity.INFO,
}
HOST_STATES: Final = {
    "DOWN": Severity.CRITICAL,
    "UNREACHABLE": Severity.HIGH,
    "UP": Severity.INFO,
}
RESOLVED_STATES: Final = frozenset({"OK", "UP"})
NOTIFICATION_EVENT_TYPES: Final = {
    "ACKNOWLEDGEMENT": "acknowledgement",
    "FLAPPINGSTART": "flapping_start",
    "FLAPPINGSTOP": "flapping_stop",
    "FLAPPINGEND": "flapping_stop",
    "FLAPPINGDISABLED": "flapping_disabled",
    "DOWNTIMESTART": "downtime_start",
    "DOWNTIMEEND": "downtime_end",
    "DOWNTIMECANCELLED": "downtime_cancelled",
    "DOWNTIMEREMOVED": "downtime_cancelled",
    "CUSTOM": "custom_notification",
}
STATE_NOTIFICATIONS: Final = frozenset({"PROBLEM", "RECOVERY"})
HOST_EVENT_TYPE: Final = "host_down"
SERVICE_FALLBACK_EVENT_TYPE: Final = "service_check"
# Enough for every macro a notification command could send; parse_qs refuses more (a form bomb).
MAX_FORM_FIELDS: Final = 256

_KNOWN: Final = frozenset(
    {
        "notificationtype", "hostname", "hostalias", "hostaddress", "hoststate", "hoststatetype",
        "hostattempt", "hostoutput", "longhostoutput", "hostperfdata", "hostproblemid", "lasthostproblemid",
        "lasthoststate", "servicedesc", "servicedisplayname", "servicestate", "servicestatetype",
        "serviceattempt", "serviceoutput", "longserviceoutput", "serviceperfdata", "serviceproblemid",
        "lastserviceproblemid", "lastservicestate", "timet", "longdatetime", "notificationauthor",
        "notificationcomment", "source", "eventtype",
    }
)  # fmt: skip
# Icinga 2's runtime macro names, flattened, that differ from the Nagios ones.
_ALIASES: Final = {
    "servicename": "servicedesc",
    "hostdisplayname": "hostalias",
    "address": "hostaddress",
    "servicelaststate": "lastservicestate",
    "hostlaststate": "lasthoststate",
}
_NOT_ALNUM: Final = re.compile(r"[^a-z0-9]+")
_UNRESOLVED: Final = re.compile(r"^\$[A-Za-z0-9_.:]*\$$")
_PERF_ITEM: Final = re.compile(r"('(?:[^']|'')*'|[^\s=']+)=(\S*)")
_PERF_VALUE: Final = re.compile(rf"^({NUMBER.pattern})([^\d;]*)$")


def _canonical(key: str) -> str:
    name = _NOT_ALNUM.sub("", key.lower())
    name = _ALIASES.get(name, name)
    for prefix in ("nagios", "icinga"):
        rest = name.removeprefix(prefix)
        if rest != name and _ALIASES.get(rest, rest) in _KNOWN:
            return _ALIASES.get(rest, rest)
    return name


class _Fields:
    """A notification's fields by canonical name, remembering how the sender spelt each for error paths."""

    def __init__(self, items: Mapping[str, str], prefix: str) -> None:
        self._values: dict[str, str] = {}
        self._prefix = prefix
        for key, value in items.items():
            text = value.strip()
            self._values[_canonical(key)] = "" if _UNRESOLVED.match(text) else text

    def get(self, name: str) -> str:
        return self._values.get(name, "")

    def path(self, name: str) -> str:
        return join_path(self._prefix, name.upper()) if self._prefix else name.upper()

    def require(self, name: str) -> str:
        value = self.get(name)
        if not value:
            raise InvalidEventError(f"Required field {name.upper()} is missing or empty.", self.path(name))
        return value


class NagiosAdapter:
    """Nagios / Icinga 2 notification (JSON or form-encoded) -> events.

    One class serves both: ``name`` ("nagios" or "icinga") becomes ``source_type`` and the default source.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def parse(self, body: bytes, content_type: str, received_at: datetime) -> list[Event]:
        """Decode one notification (or a JSON array of them).

        Raises:
            InvalidEventError: malformed JSON (field None), or a missing/wrong field such as ``HOSTNAME``.
        """
        if _is_form(body, content_type):
            try:
                form = parse_qs(
                    body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS
                )
            except ValueError as e:
                raise InvalidEventError(f"Form body is not acceptable: {e}.", None) from e
            items = {key: values[-1] for key, values in form.items()}
            return [self._event(_Fields(items, ""), items, received_at)]
        document = decode_json(body)
        if isinstance(document, list):
            return [
                self._event(_Fields(_strings(item, f"[{i}]"), f"[{i}]"), item, received_at)
                for i, item in enumerate(document)
            ]
        return [self._event(_Fields(_strings(document, ""), ""), document, received_at)]

    def _event(self, fields: _Fields, original: object, received_at: datetime) -> Event:
        host = fields.require("hostname")
        service = fields.get("servicedesc") or None
        kind = "service" if service else "host"
        states = SERVICE_STATES if service else HOST_STATES
        state_name = fields.require(f"{kind}state").upper()
        state_severity = states.get(state_name)
        if state_severity is None:
            raise InvalidEventError(
                f"Unknown {kind} state {state_name!r}; expected one of {', '.join(states)}.",
                fields.path(f"{kind}state"),
            )
        notification = _NOT_ALNUM.sub("", fields.get("notificationtype").lower()).upper()
        if notification and notification not in STATE_NOTIFICATIONS | NOTIFICATION_EVENT_TYPES.keys():
            raise InvalidEventError(
                f"Unknown notification type {fields.get('notificationtype')!r}.",
                fields.path("notificationtype"),
            )
        source = fields.get("source") or self.name
        if fields.get("eventtype"):
            event_type = event_type_from(fields.get("eventtype"), HOST_EVENT_TYPE)
        elif service:
            event_type = event_type_from(service, SERVICE_FALLBACK_EVENT_TYPE)
        else:
            event_type = HOST_EVENT_TYPE
        output = fields.get(f"{kind}output")
        # Nagios escapes newlines of the long output as a literal backslash-n.
        long_output = fields.get(f"long{kind}output").replace("\\n", "\n")
        perfdata = parse_perfdata(fields.get(f"{kind}perfdata"))
        title = f"{service} on {host} is {state_name}" if service else f"{host} is {state_name}"
        condition_fp = fingerprint(self.name, source, host, service or "", "state")
        metadata: dict[str, Any] = {
            "notification_type": notification or None,
            "state": state_name,
            "state_type": fields.get(f"{kind}statetype") or None,
            "attempt": fields.get(f"{kind}attempt") or None,
            "host_address": fields.get("hostaddress") or None,
            "host_alias": fields.get("hostalias") or None,
            "service_display_name": fields.get("servicedisplayname") or None,
            "output": output or None,
            "source_event_id": _problem_id(fields, kind),
            "long_date_time": fields.get("longdatetime") or None,
            "notification_author": fields.get("notificationauthor") or None,
            "notification_comment": fields.get("notificationcomment") or None,
            "perfdata": perfdata or None,
        }
        event = Event(
            source=source,
            source_type=self.name,
            event_type=event_type,
            severity=state_severity,
            title=title,
            description="\n".join(part for part in (output, long_output) if part) or None,
            occurred_at=_timet(fields) or received_at,
            received_at=received_at,
            host=host,
            service=service,
            raw=compact_json(original),
            fingerprint=condition_fp,
        )
        if notification in NOTIFICATION_EVENT_TYPES:
            event.event_type = NOTIFICATION_EVENT_TYPES[notification]
            event.title = f"{notification}: {title}"
            event.severity = Severity.INFO
            metadata["problem_severity"] = state_severity.value
            metadata["problem_fingerprint"] = condition_fp
            event.fingerprint = fingerprint(condition_fp, event.event_type, fields.get("notificationcomment"))
        elif state_name in RESOLVED_STATES:
            event.state = EventState.RESOLVED
            event.severity = RESOLVED_SEVERITY
            last = states.get(fields.get(f"last{kind}state").upper())
            metadata["problem_severity"] = last.value if last and last is not Severity.INFO else None
        metadata = {key: value for key, value in metadata.items() if value is not None}
        add_metrics(
            metadata, {metric_name(p["label"]): p["value"] for p in perfdata if p["value"] is not None}
        )
        event.metadata = metadata
        return event


def _is_form(body: bytes, content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/x-www-form-urlencoded":
        return True
    if media_type == "application/json" or media_type.endswith("+json"):
        return False
    # No usable content type (curl -d without -H, text/plain): JSON starts with an object or an array.
    return body.lstrip()[:1] not in (b"{", b"[")


def _strings(value: object, prefix: str) -> dict[str, str]:
    """A JSON notification object with scalar values, as text."""
    if not isinstance(value, dict):
        raise InvalidEventError(f"Expected an object, got {type_name(value)}.", prefix or None)
    fields: dict[str, str] = {}
    for key, item in value.items():
        if isinstance(item, dict | list):
            raise InvalidEventError(f"Expected a string, got {type_name(item)}.", join_path(prefix, key))
        fields[key] = "" if item is None else str(item).lower() if isinstance(item, bool) else str(item)
    return fields


def _problem_id(fields: _Fields, kind: str) -> str | None:
    """Nagios numbers each problem; a recovery carries 0 in ``...PROBLEMID`` and the id in ``LAST...``."""
    for name in (f"{kind}problemid", f"last{kind}problemid"):
        value = fields.get(name)
        if value and value != "0":
            return value
    return None


def _timet(fields: _Fields) -> datetime | None:
    text = fields.get("timet")
    if not text:
        return None
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except (ValueError, OverflowError, OSError) as e:
        raise InvalidEventError(f"Expected epoch seconds, got {text!r}.", fields.path("timet")) from e


def parse_perfdata(text: str) -> list[dict[str, Any]]:
    """Parse Nagios plugin performance data.

    ``'used space'=95%;80;90;0;100 load1=0.5;5;10`` -> one dict per metric with ``label``, ``value`` (float,
    or None for ``U``), ``uom``, ``warn``, ``crit`` (range text, kept as sent), ``min`` and ``max``.
    Malformed entries are skipped: perfdata is advisory and must never cost the notification.
    """
    result: list[dict[str, Any]] = []
    for match in _PERF_ITEM.finditer(text):
        label = match.group(1)
        if label.startswith("'"):
            label = label[1:-1].replace("''", "'")
        parts = [*match.group(2).split(";"), "", "", "", ""][:5]
        value_match = _PERF_VALUE.match(parts[0])
        if value_match is None and parts[0] != "U":
            continue
        value = finite_number(value_match.group(1)) if value_match else None
        result.append(
            {
                "label": label,
                "value": value,
                "uom": value_match.group(2) if value_match else "",
                "warn": parts[1] or None,
                "crit": parts[2] or None,
                "min": finite_number(parts[3]),
                "max": finite_number(parts[4]),
            }
        )
    return result
