"""IBM QRadar Log Event Extended Format (LEEF) 1.0 and 2.0, and device timestamps.

Format (IBM, "Log Event Extended Format (LEEF) version 2")::

    LEEF:1.0|Vendor|Product|Version|EventID|key=value<TAB>key=value...
    LEEF:2.0|Vendor|Product|Version|EventID|Delimiter|key=value<Delimiter>key=value...
    LEEF:2.0|Lancope|StealthWatch|1.0|41|^|src=10.0.1.8^dst=10.0.0.5^sev=5

- 1.0 separates attributes with a tab.
- 2.0 has a sixth header field, the delimiter: one character (``^``), or its code in hex as ``xHH`` or
  ``0xHH`` (``x09``, ``0x5E``); ``\\t`` is read as a tab. An empty delimiter field means tab. A delimiter of
  ``|`` shows as an empty field followed by ``|`` and is understood. When the sixth field contains ``=`` the
  sender left the delimiter out (seen in the wild) and it is read as attributes with a tab delimiter.
- An attribute is ``key=value`` split at the first ``=`` (values such as URLs keep theirs). LEEF has no
  escaping, so a piece without ``=`` is a value that contained the delimiter: it is joined back onto the
  previous value. Keys are stripped of surrounding spaces; a key that repeats keeps its last value.
- ``sev`` (0-10) is the severity, mapped by `opsresponder.ingest.syslog.severity_map`.
- ``devTime`` is when the event happened; ``devTimeFormat`` (a Java SimpleDateFormat pattern) says how to read
  it. See `parse_device_time` for what is understood; CEF's ``rt``/``start`` use the same forms.

Malformed headers raise ``ValueError`` with a short reason.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta
from typing import Final

import msgspec

_MONTHS: Final[dict[str, int]] = {
    name.lower(): number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1
    )
}
_HEX_DELIMITER_RE: Final = re.compile(r"(?:0[xX]|[xX])([0-9A-Fa-f]{1,4})")
# "MMM dd yyyy HH:mm:ss[.SSS][ zone]": the LEEF devTime default and ArcSight's rt form.
_DEFAULT_TIME_RE: Final = re.compile(
    r"([A-Za-z]{3}) +(\d{1,2}) +(\d{4}) +(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?: *(Z|UTC|GMT|[+-]\d{2}:?\d{2}|[A-Za-z]{2,5}))?$"
)
_EPOCH_MILLIS_MIN_DIGITS: Final = 12
"""12+ digits is epoch milliseconds (2001-09-09 onwards); fewer is epoch seconds."""
_JAVA_FORMAT_TOKEN_RE: Final = re.compile(r"'([^']*)'|([A-Za-z])\2*|[^A-Za-z']+")
_JAVA_TO_STRPTIME: Final[dict[str, str]] = {
    "yyyy": "%Y",
    "yy": "%y",
    "y": "%Y",
    "MMMM": "%B",
    "MMM": "%b",
    "MM": "%m",
    "M": "%m",
    "dd": "%d",
    "d": "%d",
    "HH": "%H",
    "H": "%H",
    "hh": "%I",
    "h": "%I",
    "mm": "%M",
    "m": "%M",
    "ss": "%S",
    "s": "%S",
    "a": "%p",
    "EEEE": "%A",
    "EEE": "%a",
    "Z": "%z",
    "X": "%z",
    "XX": "%z",
    "XXX": "%z",
    "z": "%Z",
    "zzz": "%Z",
}


class LeefMessage(msgspec.Struct, kw_only=True):
    """The fields of one LEEF event. ``delimiter`` is the attribute separator actually used."""

    version: str
    device_vendor: str
    device_product: str
    device_version: str
    event_id: str
    delimiter: str
    attributes: dict[str, str]


def _delimiter(field: str) -> str:
    if not field:
        return "\t"
    if len(field) == 1:
        return field
    if field == "\\t":
        return "\t"
    hex_match = _HEX_DELIMITER_RE.fullmatch(field)
    if hex_match is None:
        raise ValueError(f"invalid LEEF delimiter {field[:10]!r}")
    code = int(hex_match.group(1), 16)
    if code == 0:
        raise ValueError("invalid LEEF delimiter: NUL")
    return chr(code)


def parse_attributes(text: str, delimiter: str) -> dict[str, str]:
    """The ``key=value`` attributes of a LEEF event separated by `delimiter`."""
    result: dict[str, str] = {}
    key: str | None = None
    for piece in text.split(delimiter):
        name, eq, value = piece.partition("=")
        if eq and name.strip():
            key = name.strip()
            result[key] = value
        elif key is not None:
            result[key] = result[key] + delimiter + piece
    return result


def parse_leef(text: str) -> LeefMessage:
    """Parse one LEEF 1.0 or 2.0 event; `text` starts with ``LEEF:``.

    Raises:
        ValueError: not LEEF, too few header fields, an unknown version or a bad delimiter.
    """
    if not text.startswith("LEEF:"):
        raise ValueError("not LEEF: no 'LEEF:' prefix")
    parts = text.split("|", 6)
    version = parts[0][5:].strip()
    if len(parts) < 5:
        raise ValueError(f"LEEF header has {len(parts)} of 5 fields")
    if version.startswith("1"):
        # 1.0 has five header fields: everything after the fifth pipe is attributes, pipes included.
        attributes = text.split("|", 5)[5] if len(parts) > 5 else ""
        delimiter = "\t"
    elif version.startswith("2"):
        if len(parts) < 6:
            attributes, delimiter = "", "\t"
        elif len(parts) == 7 and parts[5] == "" and parts[6].startswith("|"):
            attributes, delimiter = parts[6][1:], "|"
        elif "=" in parts[5]:
            attributes = parts[5] if len(parts) == 6 else parts[5] + "|" + parts[6]
            delimiter = "\t"
        else:
            delimiter = _delimiter(parts[5])
            attributes = parts[6] if len(parts) == 7 else ""
    else:
        raise ValueError(f"unknown LEEF version {version[:10]!r}")
    return LeefMessage(
        version=version,
        device_vendor=parts[1],
        device_product=parts[2],
        device_version=parts[3],
        event_id=parts[4],
        delimiter=delimiter,
        attributes=parse_attributes(attributes, delimiter) if attributes else {},
    )


@functools.lru_cache(maxsize=64)
def java_format_to_strptime(pattern: str) -> str | None:
    """Translate a Java SimpleDateFormat pattern to a `datetime.strptime` format, or None if unsupported.

    Supported letters: ``y M d H h m s S a E Z X z`` and quoted literals. Cached, and bounded, because the
    pattern comes from the sender.
    """
    out: list[str] = []
    pos = 0
    for token in _JAVA_FORMAT_TOKEN_RE.finditer(pattern):
        if token.start() != pos:
            return None
        pos = token.end()
        literal, letter = token.group(1), token.group(2)
        if literal is not None:
            out.append(literal.replace("%", "%%") if literal else "'")
        elif letter is not None:
            run = token.group(0)
            if letter == "S":
                out.append("%f")
                continue
            directive = _JAVA_TO_STRPTIME.get(run)
            if directive is None:
                return None
            out.append(directive)
        else:
            out.append(token.group(0).replace("%", "%%"))
    if pos != len(pattern):
        return None
    return "".join(out)


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _default_form(value: str) -> datetime | None:
    match = _DEFAULT_TIME_RE.match(value)
    if match is None:
        return None
    month = _MONTHS.get(match.group(1).lower())
    if month is None:
        return None
    fraction = match.group(7) or ""
    parsed = datetime(
        int(match.group(3)),
        month,
        int(match.group(2)),
        int(match.group(4)),
        int(match.group(5)),
        min(int(match.group(6)), 59),
        int(fraction[:6].ljust(6, "0")) if fraction else 0,
        tzinfo=UTC,
    )
    zone = match.group(8)
    if zone and zone[0] in "+-":
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        return parsed - offset if zone[0] == "+" else parsed + offset
    # Zone names other than UTC/GMT/Z are ambiguous abbreviations: the time is taken as UTC.
    return parsed


def parse_device_time(value: str, pattern: str | None = None) -> datetime | None:
    """A device timestamp (LEEF ``devTime``, CEF ``rt``/``start``) as aware UTC, or None if not understood.

    Tried in order: `pattern` (a Java SimpleDateFormat, LEEF ``devTimeFormat``) when given; epoch milliseconds
    (12 or more digits) or seconds; ``MMM dd yyyy HH:mm:ss[.SSS][ zone]``; ISO 8601. Times without a zone are
    UTC. Never raises.
    """
    value = value.strip()
    if not value:
        return None
    try:
        if pattern:
            directive = java_format_to_strptime(pattern)
            if directive is not None:
                try:
                    return _to_utc(datetime.strptime(value, directive))
                # strptime compiles the directive into a regex: a sender's format that repeats a field
                # (e.g. "X0X", two zones) is a re.error, not a ValueError.
                except (ValueError, re.error):
                    pass
        if value.isascii() and value.isdigit():
            number = int(value)
            seconds = number / 1000 if len(value) >= _EPOCH_MILLIS_MIN_DIGITS else number
            return datetime.fromtimestamp(seconds, UTC)
        parsed = _default_form(value)
        if parsed is not None:
            return parsed
        if len(value) >= 19 and value[4] == "-":
            return _to_utc(datetime.fromisoformat(value.replace("z", "Z")))
    except (ValueError, OverflowError, OSError):
        # OSError: fromtimestamp of a number the platform's time functions refuse.
        return None
    return None
