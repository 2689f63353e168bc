"""RFC 5424 syslog messages, and the PRI that RFC 3164 shares with them.

Format (RFC 5424 §6)::

    <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [SP MSG]
    <165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3"] Hi

- ``PRI`` is ``<`` 1-3 digits ``>``, 0-191: facility = PRI >> 3, severity = PRI & 7.
- Every header field may be the NILVALUE ``-``; it comes out as ``None``.
- ``TIMESTAMP`` is RFC 3339 with optional fraction and a ``Z`` or ``+hh:mm`` offset; it comes out in UTC. A
  timestamp without offset is taken as UTC. An unreadable timestamp does not fail the message (the rest
  is still good): ``timestamp`` is ``None`` and ``timestamp_error`` says why.
- ``STRUCTURED-DATA`` is ``-`` or one or more ``[SD-ID PARAM="VALUE" ...]`` elements. Inside a VALUE,
  ``\\"``, ``\\\\`` and ``\\]`` are unescaped; any other backslash is kept, as §6.3.3 says.
- ``MSG`` loses a leading UTF-8 BOM (U+FEFF), which §6.4 uses to mark it as UTF-8.

Structured data comes out as ``{sd_id: {param_name: value}}``, e.g.
``{"exampleSDID@32473": {"iut": "3", "eventSource": "Application"}}``. A PARAM-NAME that occurs more than
once in one element (allowed by §6.3.3) becomes a list of its values in order; an SD-ID repeated in one
message (not allowed, but sent) merges into one dict.

Leniency where real senders deviate and nothing is ambiguous: header field lengths and characters are
not enforced, more than 6 fraction digits are truncated, a message with no STRUCTURED-DATA field at all
(the MSG follows MSGID directly) is read as MSG. Anything else malformed raises ``ValueError`` with a short
reason, which the decoder stores as ``metadata.parse_error``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final

import msgspec

NILVALUE: Final = "-"
_MAX_PRI: Final = 191
# Every PRI as senders write it ("<13>"): one dict look-up instead of checking and converting digits.
_CANONICAL_PRI: Final[dict[str, int]] = {f"<{pri}>": pri for pri in range(_MAX_PRI + 1)}
_SD_UNESCAPE_RE: Final = re.compile(r'\\(["\\\]])')
# Fast path for structured data: _SD_BLOCK_RE finds the extent of consecutive well-formed elements in one
# match, then _SD_TOKEN_RE lists their SD-IDs and PARAMs in one findall. Values use the unrolled form
# [^"\\]*(?:\\.[^"\\]*)*, which is linear (no backtracking blow-up on hostile input) and much faster in
# `re` than an alternation per character. A PARAM-NAME starting with "[" would read as a new element in
# the token scan, so the block pattern refuses it and such input takes the step-by-step parser, as does
# anything else the block pattern does not cover; that parser also words the errors.
_SD_VALUE: Final = r'"[^"\\]*(?:\\.[^"\\]*)*"'
_SD_BLOCK_RE: Final = re.compile(
    r'(?:\[[^ \]"=]+(?: +[^= \]"\[][^= \]"]*=' + _SD_VALUE + r")* *\])+", re.DOTALL
)
_SD_TOKEN_RE: Final = re.compile(r'\[([^ \]"=]+)|([^= \]"\[][^= \]"]*)="([^"\\]*(?:\\.[^"\\]*)*)"', re.DOTALL)

StructuredData = dict[str, dict[str, str | list[str]]]


class Rfc5424Message(msgspec.Struct, kw_only=True):
    """The fields of one RFC 5424 message; NILVALUE fields are ``None``."""

    pri: int
    timestamp: datetime | None
    hostname: str | None
    app_name: str | None
    procid: str | None
    msgid: str | None
    structured_data: StructuredData
    message: str
    timestamp_error: str | None = None


def parse_pri(text: str) -> tuple[int, int]:
    """Read ``<PRI>`` at the start of `text`.

    Returns:
        ``(pri, index after '>')``, or ``(-1, 0)`` when `text` does not start with a valid PRI (1-3 ASCII
        digits, at most 191). Leading zeros are accepted: they are not ambiguous.
    """
    if not text.startswith("<"):
        return -1, 0
    end = text.find(">", 1, 5)
    if end < 2:
        return -1, 0
    known = _CANONICAL_PRI.get(text[: end + 1])
    if known is not None:
        return known, end + 1
    digits = text[1:end]
    # isdigit() alone accepts other scripts' digits ("٣"), which int() would then read.
    if not (digits.isascii() and digits.isdigit()):
        return -1, 0
    pri = int(digits)
    if pri > _MAX_PRI:
        return -1, 0
    return pri, end + 1


def parse_timestamp(token: str) -> datetime:
    """An RFC 3339 timestamp as an aware UTC datetime.

    Raises:
        ValueError: `token` is not a full date-time.
    """
    # fromisoformat also takes dates alone and other ISO forms; RFC 5424 wants a full date-time.
    if len(token) < 19 or token[10] not in "Tt":
        raise ValueError(f"invalid timestamp {token[:40]!r}")
    if token[10] == "t" or token[-1] == "z":
        token = token.upper()
    try:
        value = datetime.fromisoformat(token)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        if value.tzinfo is UTC:
            return value
        return value.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        # OverflowError: a valid offset that pushes year 1 or 9999 out of range when converted to UTC.
        raise ValueError(f"invalid timestamp {token[:40]!r}") from exc


def _value_end(text: str, start: int) -> int:
    """Index of the unescaped ``"`` that closes a PARAM-VALUE starting at `start`, or -1."""
    quote = text.find('"', start)
    while quote >= 0:
        backslashes = 0
        k = quote - 1
        while k >= start and text[k] == "\\":
            backslashes += 1
            k -= 1
        if backslashes % 2 == 0:
            return quote
        quote = text.find('"', quote + 1)
    return -1


def _add_param(params: dict[str, str | list[str]], name: str, value: str) -> None:
    if "\\" in value:
        value = _SD_UNESCAPE_RE.sub(r"\1", value)
    previous = params.get(name)
    if previous is None:
        params[name] = value
    elif isinstance(previous, list):
        previous.append(value)
    else:
        params[name] = [previous, value]


def parse_structured_data(text: str, pos: int) -> tuple[StructuredData, int]:
    """Read SD-ELEMENTs starting at ``text[pos] == '['``.

    Returns:
        The structured data and the index just after the last element.

    Raises:
        ValueError: an element is malformed (unterminated, unquoted value, empty name).
    """
    block = _SD_BLOCK_RE.match(text, pos)
    if block is None:
        return _parse_structured_data_slowly(text, pos)
    end = block.end()
    if end < len(text) and text[end] == "[":
        # An element the fast path does not cover follows good ones: read the whole run step by step.
        return _parse_structured_data_slowly(text, pos)
    data: StructuredData = {}
    params: dict[str, str | list[str]] = {}
    for sd_id, name, value in _SD_TOKEN_RE.findall(text, pos, end):
        if sd_id:
            found = data.get(sd_id)
            params = data[sd_id] = {} if found is None else found
        elif name in params or "\\" in value:
            _add_param(params, name, value)
        else:
            params[name] = value
    return data, end


def _parse_structured_data_slowly(text: str, pos: int) -> tuple[StructuredData, int]:
    """`parse_structured_data` step by step, to say exactly what is wrong with an element."""
    data: StructuredData = {}
    n = len(text)
    while pos < n and text[pos] == "[":
        pos += 1
        space = text.find(" ", pos)
        close = text.find("]", pos)
        if close < 0:
            raise ValueError("unterminated structured data element")
        id_end = close if space < 0 or close < space else space
        sd_id = text[pos:id_end]
        if not sd_id or '"' in sd_id or "=" in sd_id:
            raise ValueError("invalid SD-ID")
        params = data.get(sd_id)
        if params is None:
            params = data[sd_id] = {}
        pos = id_end
        while True:
            if pos >= n:
                raise ValueError("unterminated structured data element")
            char = text[pos]
            if char == "]":
                pos += 1
                break
            if char != " ":
                raise ValueError(f"unexpected {char!r} in structured data element {sd_id!r}")
            while pos < n and text[pos] == " ":
                pos += 1
            if pos < n and text[pos] == "]":
                pos += 1
                break
            eq = text.find("=", pos)
            if eq < 0:
                raise ValueError(f"SD-PARAM without '=' in {sd_id!r}")
            name = text[pos:eq]
            if not name or " " in name or "]" in name or '"' in name:
                raise ValueError(f"invalid PARAM-NAME in {sd_id!r}")
            if eq + 1 >= n or text[eq + 1] != '"':
                raise ValueError(f"unquoted value of {name!r} in {sd_id!r}")
            end = _value_end(text, eq + 2)
            if end < 0:
                raise ValueError(f"unterminated value of {name!r} in {sd_id!r}")
            _add_param(params, name, text[eq + 2 : end])
            pos = end + 1
    return data, pos


def parse_rfc5424(text: str) -> Rfc5424Message:
    """Parse one RFC 5424 message (already decoded, framing removed).

    Raises:
        ValueError: the message is not RFC 5424 or is malformed; the text is a short reason.
    """
    pri, pos = parse_pri(text)
    if pri < 0:
        raise ValueError("missing or invalid PRI")
    if not text.startswith("1 ", pos):
        raise ValueError("not RFC 5424: version is not 1")
    parts = text[pos + 2 :].split(" ", 5)
    if len(parts) < 5:
        raise ValueError("truncated RFC 5424 header")
    ts_token, hostname, app_name, procid, msgid = parts[0], parts[1], parts[2], parts[3], parts[4]
    if not (ts_token and hostname and app_name and procid and msgid):
        raise ValueError("empty RFC 5424 header field (two spaces in a row)")
    timestamp: datetime | None = None
    timestamp_error: str | None = None
    if ts_token != NILVALUE:
        try:
            timestamp = parse_timestamp(ts_token)
        except ValueError as exc:
            timestamp_error = str(exc)
    rest = parts[5] if len(parts) == 6 else ""
    structured_data: StructuredData
    if rest.startswith("["):
        structured_data, after = parse_structured_data(rest, 0)
        if after == len(rest):
            message = ""
        elif rest[after] == " ":
            message = rest[after + 1 :]
        else:
            raise ValueError("no space after structured data")
    elif rest == NILVALUE:
        structured_data, message = {}, ""
    elif rest.startswith("- "):
        structured_data, message = {}, rest[2:]
    else:
        # No STRUCTURED-DATA field at all: some senders put MSG right after MSGID.
        structured_data, message = {}, rest
    if message.startswith("\ufeff"):
        message = message[1:]
    return Rfc5424Message(
        pri=pri,
        timestamp=timestamp,
        hostname=None if hostname == NILVALUE else hostname,
        app_name=None if app_name == NILVALUE else app_name,
        procid=None if procid == NILVALUE else procid,
        msgid=None if msgid == NILVALUE else msgid,
        structured_data=structured_data,
        message=message,
        timestamp_error=timestamp_error,
    )
