"""Helpers shared by the native payload adapters: decoding, error paths, severities, identifiers, metrics.

Everything here is pure (no I/O, no clock): adapters are functions of the request body and the time it was
received, so the same body always yields the same events.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, Protocol, TypeVar

import msgspec

from opsresponder.core.clock import as_utc
from opsresponder.core.errors import InvalidEventError
from opsresponder.core.event import Event
from opsresponder.core.json_errors import MALFORMED_JSON_ERRORS
from opsresponder.core.severity import Severity

T = TypeVar("T")


class Adapter(Protocol):
    """Turns one native webhook body of a monitoring system into events.

    ``parse`` is pure: it decodes and validates the body and returns one event per alert, in body order,
    with ``fingerprint`` already set so that a resolve matches the problem it clears.

    Raises:
        InvalidEventError: from ``parse`` when the body is not an acceptable payload; ``field`` is the path
            of the missing or wrong field (``alerts[1].labels.alertname``) or None for malformed JSON.
    """

    name: str

    def parse(self, body: bytes, content_type: str, received_at: datetime) -> list[Event]: ...


# Labels / tags commonly used by Alertmanager, Grafana and Zabbix users for severity. Keys are lower case;
# the five OpsResponder levels map to themselves. Anything else is refused, never guessed: a typo in a
# severity label should be visible to the sender (400), not silently become "medium".
LABEL_SEVERITIES: Final[Mapping[str, Severity]] = {
    **{s.value: s for s in Severity},
    "disaster": Severity.CRITICAL,
    "fatal": Severity.CRITICAL,
    "emergency": Severity.CRITICAL,
    "emerg": Severity.CRITICAL,
    "alert": Severity.CRITICAL,
    "crit": Severity.CRITICAL,
    "page": Severity.CRITICAL,
    "p1": Severity.CRITICAL,
    "sev1": Severity.CRITICAL,
    "error": Severity.HIGH,
    "err": Severity.HIGH,
    "major": Severity.HIGH,
    "p2": Severity.HIGH,
    "sev2": Severity.HIGH,
    "warning": Severity.MEDIUM,
    "warn": Severity.MEDIUM,
    "average": Severity.MEDIUM,
    "moderate": Severity.MEDIUM,
    "p3": Severity.MEDIUM,
    "sev3": Severity.MEDIUM,
    "minor": Severity.LOW,
    "p4": Severity.LOW,
    "sev4": Severity.LOW,
    "information": Severity.INFO,
    "informational": Severity.INFO,
    "notice": Severity.INFO,
    "debug": Severity.INFO,
    "none": Severity.INFO,
    "ok": Severity.INFO,
    "p5": Severity.INFO,
    "sev5": Severity.INFO,
}

# What a firing alert without any severity label becomes: Alertmanager and Grafana have no severity of
# their own, and "medium" neither pages anyone nor is filtered as noise by the info-level policy.
DEFAULT_LABEL_SEVERITY: Final = Severity.MEDIUM

# Every resolve is "info": it reports that something stopped being wrong, and a rule keyed on severity
# must not act on it. The severity of the problem it clears is kept in metadata["problem_severity"].
RESOLVED_SEVERITY: Final = Severity.INFO

_MAX_EVENT_TYPE: Final = 64
_UNSAFE_EVENT_TYPE_CHARS: Final = re.compile(r"[^a-z0-9_.\-]+")
_CAMEL_BOUNDARY: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_MSGSPEC_PATH: Final = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_MISSING_FIELD: Final = re.compile(r"^Object missing required field `(?P<name>[^`]*)`")
NUMBER: Final = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_LEADING_NUMBER: Final = re.compile(rf"^\s*({NUMBER.pattern})")
_METRIC_NAME_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_]+")


def decode_json(body: bytes) -> Any:
    """Decode a JSON body into plain Python values.

    Raises:
        InvalidEventError: with field None when the body is not JSON (or nests absurdly deep).
    """
    try:
        return msgspec.json.decode(body)
    except MALFORMED_JSON_ERRORS as e:
        raise InvalidEventError(f"Body is not valid JSON: {e}.", None) from e
    except RecursionError as e:
        # msgspec recurses per nesting level; a body of a million "[" must be a 400, not a crash.
        raise InvalidEventError("Body is not valid JSON: nested too deeply.", None) from e


def join_path(prefix: str, name: str | int) -> str:
    """Append a key or an index to a dotted field path (``alerts`` + 1 -> ``alerts[1]``)."""
    if isinstance(name, int):
        return f"{prefix}[{name}]"
    return f"{prefix}.{name}" if prefix else name


def convert(obj: object, type_: type[T], prefix: str = "") -> T:
    """Validate decoded JSON against a msgspec type, turning msgspec's ``$...`` path into a field path.

    Raises:
        InvalidEventError: naming the wrong field; a missing field is named itself, not its parent.
    """
    try:
        return msgspec.convert(obj, type_)
    except msgspec.ValidationError as e:
        message, field = _field_from_validation_error(str(e), prefix)
        raise InvalidEventError(message, field) from e


def _field_from_validation_error(text: str, prefix: str) -> tuple[str, str | None]:
    match = _MSGSPEC_PATH.match(text)
    message = match.group("message") if match else text
    path = (match.group("path") if match else None) or ""
    path = path.lstrip(".")
    missing = _MISSING_FIELD.match(message)
    if missing:
        path = join_path(path, missing.group("name"))
    if prefix:
        path = f"{prefix}{'' if path.startswith('[') or not path else '.'}{path}"
    return message, path or None


def string_map(value: object, field: str) -> dict[str, str]:
    """A JSON object of strings (labels, annotations); null is an empty map.

    Validated here rather than by msgspec because msgspec reports a bad map value as ``[...]``, and the
    sender needs the label's name.

    Raises:
        InvalidEventError: naming the first non-string entry.
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidEventError(f"Expected an object of strings, got {type_name(value)}.", field)
    for key, item in value.items():
        if not isinstance(item, str):
            raise InvalidEventError(f"Expected `str`, got {type_name(item)}.", join_path(field, key))
    return value


def number_map(value: object, field: str) -> dict[str, float]:
    """A JSON object of numbers (Grafana ``values``); null entries and null itself are dropped.

    Raises:
        InvalidEventError: naming the first entry that is neither a number nor null.
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidEventError(f"Expected an object of numbers, got {type_name(value)}.", field)
    numbers: dict[str, float] = {}
    for key, item in value.items():
        if isinstance(item, bool) or not isinstance(item, int | float | None):
            raise InvalidEventError(f"Expected a number, got {type_name(item)}.", join_path(field, key))
        if item is not None and math.isfinite(item):
            numbers[key] = float(item)
    return numbers


def type_name(value: object) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def compact_json(value: object) -> str:
    """The compact JSON text of a decoded value, kept as ``Event.raw``."""
    return msgspec.json.encode(value).decode()


def utc_or_none(value: datetime | None, field: str) -> datetime | None:
    """A sender timestamp in UTC; Go's zero time (``0001-01-01T00:00:00Z``) means unset.

    Raises:
        InvalidEventError: for a timestamp that cannot be expressed in UTC (e.g. year 1 at +02:00).
    """
    if value is None or value.year == 1:
        return None
    try:
        return as_utc(value)
    except OverflowError as e:
        raise InvalidEventError("Timestamp is out of range.", field) from e


def label_severity(value: str | None, field: str) -> Severity | None:
    """Map a severity label (``critical``, ``warning``, ``P2``...) to a Severity; None when absent.

    Raises:
        InvalidEventError: for a value outside `LABEL_SEVERITIES`.
    """
    if value is None:
        return None
    severity = LABEL_SEVERITIES.get(value.strip().lower())
    if severity is None:
        raise InvalidEventError(
            f"Unknown severity {value!r}; use one of critical, high, medium, low, info "
            "(or warning, error, page, ...: see docs/integrations.md).",
            field,
        )
    return severity


def snake_case(name: str) -> str:
    """``HighCPUUsage`` -> ``high_cpu_usage``; ``High memory usage`` -> ``high_memory_usage``."""
    return _CAMEL_BOUNDARY.sub("_", name.strip()).lower()


def event_type_from(text: str, fallback: str) -> str:
    """Make an ``event_type`` identifier (1-64 of ``a-z 0-9 _ . -``) out of a sender's name.

    Unsafe characters become ``_``; an empty result falls back to `fallback` (itself an identifier).
    """
    cleaned = _UNSAFE_EVENT_TYPE_CHARS.sub("_", snake_case(text))
    cleaned = re.sub(r"_{2,}", "_", cleaned).strip("_.-")
    cleaned = cleaned[:_MAX_EVENT_TYPE].rstrip("_.-")
    return cleaned or fallback


def strip_port(instance: str) -> str:
    """The host of a Prometheus ``instance``: ``10.0.0.5:9100`` -> ``10.0.0.5``, ``[::1]:9100`` -> ``::1``.

    A URL (blackbox exporter targets) yields its host name; a bare IPv6 address is kept whole.
    """
    value = instance.strip()
    if "://" in value:
        value = value.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    if value.count(":") == 1:
        host, _, port = value.partition(":")
        if port.isdigit():
            return host
    return value


def identity_hash(parts: Mapping[str, str]) -> str:
    """A stable digest of a label set: key order does not matter, values are unambiguous."""
    h = hashlib.blake2b(digest_size=16)
    for key in sorted(parts):
        h.update(key.encode("utf-8", "surrogatepass"))
        h.update(b"\x1e")
        h.update(parts[key].encode("utf-8", "surrogatepass"))
        h.update(b"\x1f")
    return h.hexdigest()


def leading_number(text: str) -> float | None:
    """The number a value string starts with (``95.3 %`` -> 95.3), or None; never NaN or infinite."""
    match = _LEADING_NUMBER.match(text)
    if match is None:
        return None
    number = float(match.group(1))
    return number if math.isfinite(number) else None


def finite_number(text: str) -> float | None:
    """A plain decimal number, or None (``float()`` alone would also take ``nan``, ``inf`` and ``1_0``)."""
    if NUMBER.fullmatch(text) is None:
        return None
    number = float(text)
    return number if math.isfinite(number) else None


def metric_name(label: str) -> str:
    """A metric name usable in a dotted rule path: ``'/var'`` -> ``var``, ``'/'`` -> ``root``.

    Returns "" when nothing usable is left.
    """
    stripped = label.strip()
    name = _METRIC_NAME_UNSAFE.sub("_", stripped.lstrip("/")).strip("_")
    if not name and stripped.startswith("/"):
        return "root"
    return name


def add_metrics(metadata: dict[str, Any], metrics: Mapping[str, float]) -> None:
    """Put metrics under ``metadata["metrics"]`` and copy each to ``metadata[name]`` when that key is free.

    ``metadata.metrics.<name>`` is the canonical place (the generic webhook body uses it); the top-level copy
    lets a rule say ``metadata.cpu_usage > 90``. The adapter's own keys (``labels``, ``notification_type``...)
    always win over a metric of the same name, so a sender cannot overwrite them with perfdata.
    """
    finite = {name: value for name, value in metrics.items() if name and math.isfinite(value)}
    if not finite:
        return
    metadata["metrics"] = finite
    for name, value in finite.items():
        metadata.setdefault(name, value)


def fingerprint(*parts: str) -> str:
    """The dedup identity from a sender's stable alert identity; same digest shape as compute_fingerprint."""
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x1f")
    return h.hexdigest()
