"""RFC 3164 ("BSD") syslog messages, and the variants real senders emit.

Classic form (RFC 3164 §4.1)::

    <PRI>Mmm dd hh:mm:ss HOSTNAME TAG[PID]: MSG
    <34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8

What is accepted, in order:

- ``<PRI>`` (optional: without it the decoder assumes 13, ``user.notice``, per §4.3.3; ``pri`` is -1 here).
- Cisco IOS ``service sequence-numbers``: ``<189>123: `` (and the empty ``<189>: `` of IOS and NX-OS), kept
  as ``cisco.sequence``; IOS ``logging origin-id hostname`` puts ``HOST: `` after it.
- A timestamp, one of:

  - BSD ``Mmm dd hh:mm:ss`` (day space-padded or not), optionally with a year (``Mmm dd yyyy hh:mm:ss``,
    Cisco ASA and IOS ``datetime year``), a fraction (``.000``), Cisco's clock-state prefix ``*`` or ``.``
    and a zone name between the time and a Cisco mnemonic (``*Mar  1 18:46:11.883 UTC: %SYS-...``).
  - NX-OS ``yyyy Mmm dd hh:mm:ss``.
  - ISO 8601 / RFC 3339 (``2024-01-01T00:00:00.123456+01:00``), as rsyslog's forward format and syslog-ng's
    ``loggen`` send.

  The BSD form has no year and no zone. The zone is taken to be UTC (a zone name other than UTC/GMT is
  ignored: abbreviations are ambiguous). The year is inferred from the receive time: the receive year,
  except that a date more than a day in the future belongs to the previous year (a December message
  received in January), and a January message received in December belongs to the next year (a sender whose
  clock is slightly ahead at midnight on 31 December). A date that does not exist (Feb 30) leaves
  ``timestamp`` ``None``.
- ``HOSTNAME``: only after a timestamp (§4.1.2), and only if the next word does not look like a tag
  (``name:`` or ``name[pid]``), a Cisco mnemonic (``%...``) or a CEF/LEEF payload. Otherwise there is no
  hostname. Cisco ASA's ``host : %ASA-...`` stray colon is skipped.
- Cisco ``%FACILITY-SEVERITY-MNEMONIC:`` (IOS, IOS-XE, IOS-XR ``%PKT_INFRA-LINK-3-UPDOWN``, NX-OS, ASA
  ``%ASA-6-302013``): ``cisco = {"facility", "severity" (0-7, a syslog severity), "mnemonic"}`` and the
  message keeps the mnemonic, so titles read like the device's console.
- ``TAG[PID]:`` or ``TAG:`` (also ``TAG[PID]`` without the colon), as ``app_name`` and ``procid``, the names
  RFC 5424 uses for the same things. A payload starting with ``CEF:`` or ``LEEF:`` is never read as a tag.

Parsing never fails: whatever is left is ``message``. This is a deliberate RFC 3164 property (§4.3.2, a
relay treats a message it cannot read as content), so everything that is not RFC 5424 can fall back here.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import msgspec

from opsresponder.ingest.syslog.rfc5424 import parse_pri

_MONTHS: Final[dict[str, int]] = {
    name: number
    for number, month in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1
    )
    for name in (month, month.upper(), month.lower())
}
_ONE_DAY: Final = timedelta(days=1)
_MAX_TAG_LENGTH: Final = 64
"""RFC 3164 allows 32; real tags (``postfix/smtpd``, systemd units) run longer, but not sentence-long."""
_MAX_SEQUENCE_DIGITS: Final = 10
_MAX_PRI: Final = 191
_MNEMONIC_RE: Final = re.compile(r"%([A-Za-z0-9_]+(?:-[A-Za-z0-9_]+)*?)-([0-7])-([A-Za-z0-9_]+)\b")
# A zone name is only taken when a Cisco mnemonic follows: " su: msg" is a tag, not a zone.
_ZONE_RE: Final = re.compile(r" [A-Z]{3,5}(?:[+-]\d{1,2})?: (?=%)")
_PAYLOAD_PREFIXES: Final = ("CEF:", "LEEF:")
# The shape nearly every Linux sender uses, read by one anchored match instead of a dozen small steps:
# "<PRI>Mmm dd hh:mm:ss host tag[pid]: " or "<PRI>ISO-8601 host tag[pid]: ". It accepts a subset of what the
# general path accepts and must give the same result (a test compares the two); anything else, including
# a month name that is not one, goes the general way. A tag starting with a digit could be a Cisco
# sequence number, and a host with a colon could be IPv6 or a tag, so both are left to the general path.
_FAST_RE: Final = re.compile(
    r"<([0-9]{1,3})>"
    r"(?:([A-Z][a-z]{2})  ?([0-9]{1,2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})|([0-9]{4}-[0-9]{2}-[0-9]{2}T[!-~]+))"
    r" +([A-Za-z0-9][A-Za-z0-9._-]*) +"
    r"(?!CEF:|LEEF:)([^\s\[\]:%\d][^\s\[\]:]{0,47})(?:\[([^\s\[\]]{0,16})\])?: "
)


class Rfc3164Message(msgspec.Struct, kw_only=True):
    """The fields of one RFC 3164-style message. Absent fields are ``None``; ``pri`` is -1 when absent."""

    pri: int
    timestamp: datetime | None
    hostname: str | None
    app_name: str | None
    procid: str | None
    message: str
    cisco: dict[str, Any] | None = None


def infer_year(
    month: int, day: int, hour: int, minute: int, second: int, micro: int, received_at: datetime
) -> datetime | None:
    """The UTC datetime of a year-less BSD timestamp received at `received_at`, or None if no such date.

    The year is the receive year, except across the new-year boundary (see the module docstring).
    """
    year = received_at.year
    if month == 1 and received_at.month == 12:
        year += 1
    try:
        value = datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)
    except ValueError:
        if month == 2 and day == 29:
            # Feb 29 of a non-leap receive year can only be from the last leap year.
            try:
                return datetime(year - ((year % 4) or 4), 2, 29, hour, minute, second, micro, tzinfo=UTC)
            except ValueError:
                return None
        return None
    if value - received_at > _ONE_DAY:
        # Feb 29 of a leap year in the future is from the leap year before it, not from last year.
        try:
            return value.replace(year=year - (4 if month == 2 and day == 29 else 1))
        except ValueError:
            return None
    return value


def _two_digits(text: str, pos: int) -> int:
    """The two-digit number at `pos`, or -1."""
    pair = text[pos : pos + 2]
    if len(pair) == 2 and pair.isascii() and pair.isdigit():
        return int(pair)
    return -1


def _clock(text: str, pos: int) -> tuple[int, int, int, int, int]:
    """``hh:mm:ss[.fff]`` at `pos`: (hour, minute, second, microsecond, end) or end -1."""
    if text[pos + 2 : pos + 3] != ":" or text[pos + 5 : pos + 6] != ":":
        return 0, 0, 0, 0, -1
    hour = _two_digits(text, pos)
    minute = _two_digits(text, pos + 3)
    second = _two_digits(text, pos + 6)
    if hour < 0 or minute < 0 or second < 0 or hour > 23 or minute > 59 or second > 60:
        return 0, 0, 0, 0, -1
    second = min(second, 59)  # a leap second has no datetime; one second off beats a lost timestamp
    end = pos + 8
    micro = 0
    if text[end : end + 1] == ".":
        k = end + 1
        n = len(text)
        while k < n and "0" <= text[k] <= "9":
            k += 1
        digits = text[end + 1 : k]
        if digits:
            micro = int(digits[:6].ljust(6, "0"))
            end = k
    return hour, minute, second, micro, end


def _skip_zone_and_colon(text: str, pos: int) -> int:
    """Skip Cisco's `` UTC: %``-style zone and a trailing ``:`` after a timestamp, then spaces."""
    if text.startswith(" ", pos):
        zone = _ZONE_RE.match(text, pos)
        if zone is not None:
            pos = zone.end()
    elif text.startswith(":", pos):
        pos += 1
    n = len(text)
    while pos < n and text[pos] == " ":
        pos += 1
    return pos


def _bsd_timestamp(text: str, pos: int, received_at: datetime, year: int) -> tuple[datetime | None, int]:
    """``Mmm dd [yyyy ]hh:mm:ss[.fff]`` at `pos`; end is -1 when there is none. `year` 0 means infer it."""
    month = _MONTHS.get(text[pos : pos + 3])
    if month is None or text[pos + 3 : pos + 4] != " ":
        return None, -1
    k = pos + 4
    if text[k : k + 1] == " ":
        k += 1
    day_end = k
    while day_end < k + 2 and "0" <= text[day_end : day_end + 1] <= "9":
        day_end += 1
    if day_end == k or text[day_end : day_end + 1] != " ":
        return None, -1
    day = int(text[k:day_end])
    k = day_end + 1
    year_text = text[k : k + 4]
    if not year and text[k + 4 : k + 5] == " " and year_text.isascii() and year_text.isdigit():
        year = int(year_text)
        k += 5
    hour, minute, second, micro, end = _clock(text, k)
    if end < 0:
        return None, -1
    if year:
        try:
            return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC), end
        except ValueError:
            return None, end
    return infer_year(month, day, hour, minute, second, micro, received_at), end


def _iso_timestamp(text: str, pos: int) -> tuple[datetime | None, int]:
    """An ISO 8601 date-time token at `pos`; end is -1 when there is none."""
    space = text.find(" ", pos)
    end = space if space >= 0 else len(text)
    token = text[pos:end]
    if len(token) < 19 or token[10] not in "Tt":
        return None, -1
    if token[10] == "t" or token[-1] == "z":
        token = token.upper()
    try:
        value = datetime.fromisoformat(token)
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        elif value.tzinfo is not UTC:
            value = value.astimezone(UTC)
    except (ValueError, OverflowError):
        return None, -1
    return value, end


def parse_timestamp(text: str, pos: int, received_at: datetime) -> tuple[datetime | None, int]:
    """Any accepted timestamp at `pos` (see the module docstring), with what follows it skipped.

    Returns:
        ``(timestamp, index of the next field)``; the index is -1 when there is no timestamp at `pos`. The
        timestamp is ``None`` when one was recognised but names no real date.
    """
    if text[pos : pos + 1] in ("*", "."):
        # Cisco: "*" clock not set, "." clock was set but is not synchronised.
        value, end = _bsd_timestamp(text, pos + 1, received_at, 0)
    else:
        first = text[pos : pos + 1]
        if "0" <= first <= "9":
            if text[pos + 4 : pos + 5] == "-":
                value, end = _iso_timestamp(text, pos)
            elif text[pos + 4 : pos + 5] == " " and text[pos : pos + 4].isdigit():
                value, end = _bsd_timestamp(text, pos + 5, received_at, int(text[pos : pos + 4]))
            else:
                return None, -1
        else:
            value, end = _bsd_timestamp(text, pos, received_at, 0)
    if end < 0:
        return None, -1
    return value, _skip_zone_and_colon(text, end)


def _sequence(text: str, pos: int) -> tuple[int | None, int]:
    """Cisco's ``123: `` or ``: `` at `pos`: (number or None, index after it); index is -1 when absent."""
    if text.startswith(": ", pos):
        return None, pos + 2
    k = pos
    n = len(text)
    while k < n and k - pos <= _MAX_SEQUENCE_DIGITS and "0" <= text[k] <= "9":
        k += 1
    if k == pos or not text.startswith(": ", k):
        return None, -1
    return int(text[pos:k]), k + 2


def _looks_like_tag(word: str) -> bool:
    return word.endswith(":") or ("[" in word and word.endswith("]"))


def parse_rfc3164(text: str, received_at: datetime) -> Rfc3164Message:
    """Parse one RFC 3164-style message (already decoded, framing removed). Never raises.

    Args:
        text: the message.
        received_at: when it arrived (aware UTC); the year of a BSD timestamp is inferred from it.
    """
    fast = _FAST_RE.match(text)
    if fast is not None:
        (pri_text, month_name, day, hour, minute, second, iso, hostname, app_name, procid) = fast.groups()
        pri = int(pri_text)
        if pri <= _MAX_PRI:
            timestamp: datetime | None
            if iso is None:
                month = _MONTHS.get(month_name)
                if month is not None and int(hour) < 24 and int(minute) < 60 and int(second) <= 60:
                    timestamp = infer_year(
                        month, int(day), int(hour), int(minute), min(int(second), 59), 0, received_at
                    )
                    return Rfc3164Message(
                        pri=pri,
                        timestamp=timestamp,
                        hostname=hostname,
                        app_name=app_name,
                        procid=procid,
                        message=text[fast.end() :],
                    )
            else:
                timestamp, end = _iso_timestamp(iso, 0)
                if end >= 0:
                    return Rfc3164Message(
                        pri=pri,
                        timestamp=timestamp,
                        hostname=hostname,
                        app_name=app_name,
                        procid=procid,
                        message=text[fast.end() :],
                    )
    return parse_rfc3164_general(text, received_at)


def parse_rfc3164_general(text: str, received_at: datetime) -> Rfc3164Message:
    """`parse_rfc3164` without its fast path: every variant, step by step. Never raises."""
    pri, pos = parse_pri(text)
    n = len(text)
    timestamp: datetime | None = None
    hostname: str | None = None
    has_timestamp = False
    sequence: int | None = None
    cisco_prefix = False

    if pri >= 0:
        number, after = _sequence(text, pos)
        if after >= 0:
            sequence, pos, cisco_prefix = number, after, True
    value, after = parse_timestamp(text, pos, received_at)
    if after >= 0:
        timestamp, pos, has_timestamp = value, after, True
    elif cisco_prefix:
        # IOS "logging origin-id hostname": "<189>45: R1: *Mar  1 00:00:00.000: %SYS-..."
        colon = text.find(": ", pos, pos + 256)
        if colon > pos and " " not in text[pos:colon]:
            value, after = parse_timestamp(text, colon + 2, received_at)
            if after >= 0:
                hostname, timestamp, pos, has_timestamp = text[pos:colon], value, after, True

    if has_timestamp and hostname is None and pos < n and text[pos] != "%":
        space = text.find(" ", pos)
        end = space if space >= 0 else n
        word = text[pos:end]
        if not _looks_like_tag(word) and not word.startswith(_PAYLOAD_PREFIXES):
            hostname = word
            pos = end
            while pos < n and text[pos] == " ":
                pos += 1
            if text.startswith(": ", pos):  # Cisco ASA: "fw1 : %ASA-6-..."
                pos += 2
            # A relay (rsyslog) in front of a Cisco device: "host 123: *Mar  1 ...: %SYS-..."
            number, after = _sequence(text, pos)
            if after >= 0 and text[after : after + 1] in ("*", ".", "%"):
                sequence, pos = number, after
                value, after = parse_timestamp(text, pos, received_at)
                if after >= 0:
                    pos = after
                    if timestamp is None:
                        timestamp = value

    app_name: str | None = None
    procid: str | None = None
    cisco: dict[str, Any] | None = None
    if pos < n and text[pos] == "%":
        mnemonic = _MNEMONIC_RE.match(text, pos)
        if mnemonic is not None:
            cisco = {
                "facility": mnemonic.group(1),
                "severity": int(mnemonic.group(2)),
                "mnemonic": mnemonic.group(3),
            }
    elif not text.startswith(_PAYLOAD_PREFIXES, pos):
        space = text.find(" ", pos, pos + _MAX_TAG_LENGTH + 8)
        end = space if space >= 0 else n
        word = text[pos:end]
        if word and (space >= 0 or end - pos <= _MAX_TAG_LENGTH + 8):
            tag = word[:-1] if word.endswith(":") else (word if word.endswith("]") else "")
            if tag:
                bracket = tag.find("[")
                if bracket < 0:
                    app_name = tag
                elif bracket > 0 and tag.endswith("]"):
                    app_name, procid = tag[:bracket], tag[bracket + 1 : -1]
                if app_name is not None:
                    pos = end + 1 if space >= 0 else n
    if sequence is not None:
        if cisco is None:
            cisco = {"sequence": sequence}
        else:
            cisco["sequence"] = sequence
    return Rfc3164Message(
        pri=pri,
        timestamp=timestamp,
        hostname=hostname,
        app_name=app_name,
        procid=procid,
        message=text[pos:],
        cisco=cisco,
    )
