"""ArcSight Common Event Format (CEF), alone or as the MSG of a syslog message.

Format ("Implementing ArcSight CEF", rev. 25)::

    CEF:Version|Device Vendor|Device Product|Device Version|Device Event Class ID|Name|Severity|Extension
    CEF:0|Security|threatmanager|1.0|100|worm successfully stopped|10|src=10.0.0.1 dst=2.1.2.2 spt=1232

Header: seven ``|``-separated fields. Inside them ``\\|`` is a pipe and ``\\\\`` a backslash; any other
backslash is kept as is. A header with only the seven fields and no final ``|`` is accepted with an empty
extension; fewer fields is an error.

Extension: ``key=value`` pairs separated by spaces. A key is ``[A-Za-z0-9_.[\\]-]+`` (ArcSight keys, ``ad.*``
additional data, vendor custom keys) and is recognised only after a space or at the start, followed by an
unescaped ``=``. A value runs until the space before the next key, so it may contain spaces, and it
is unescaped: ``\\=`` is ``=``, ``\\\\`` a backslash, ``\\n`` a line feed, ``\\r`` a carriage return; other
backslash sequences are kept. A pipe needs no escape in the extension. Text before the first key is
ignored; a key that repeats keeps its last value. Keys are kept as sent (``cs1Label``, ``cs1``): pairing
labels is left to rules.

Severity is kept as sent (``10``, ``High``); `opsresponder.ingest.syslog.severity_map` maps it.
Malformed input raises ``ValueError`` with a short reason.
"""

from __future__ import annotations

import re
from typing import Final

import msgspec

_HEADER_FIELDS: Final = 7
# Starts with a literal space so the regex engine can skip ahead to candidates instead of trying every
# position; a backslash is not a key character, so an escaped "\\=" never ends a key.
_KEY_SPLIT_RE: Final = re.compile(r" ([A-Za-z0-9_.\[\]\-]+)=")
_EXTENSION_ESCAPE_RE: Final = re.compile(r"\\([\\=nr])")
_EXTENSION_ESCAPES: Final[dict[str, str]] = {"\\": "\\", "=": "=", "n": "\n", "r": "\r"}


class CefMessage(msgspec.Struct, kw_only=True):
    """The fields of one CEF event, unescaped. ``severity`` is the raw header value."""

    version: int
    device_vendor: str
    device_product: str
    device_version: str
    signature_id: str
    name: str
    severity: str
    extension: dict[str, str]


def _split_escaped_header(text: str) -> tuple[list[str], str]:
    """Split the header where pipes may be escaped: (up to 7 unescaped fields, extension)."""
    fields: list[str] = []
    chunk: list[str] = []
    start = 0
    i = 0
    n = len(text)
    while i < n:
        char = text[i]
        if char == "\\" and i + 1 < n and text[i + 1] in "|\\":
            chunk.append(text[start:i])
            chunk.append(text[i + 1])
            i += 2
            start = i
        elif char == "|":
            chunk.append(text[start:i])
            fields.append("".join(chunk))
            chunk = []
            i += 1
            start = i
            if len(fields) == _HEADER_FIELDS:
                return fields, text[i:]
        else:
            i += 1
    chunk.append(text[start:])
    fields.append("".join(chunk))
    return fields, ""


def _unescape_value(value: str) -> str:
    if "\\\\" in value:
        return _EXTENSION_ESCAPE_RE.sub(lambda m: _EXTENSION_ESCAPES[m.group(1)], value)
    # Without an escaped backslash every backslash starts its own escape, and replacing one never creates
    # another, so plain replaces (much cheaper than a regex with a callback) give the same result.
    return value.replace("\\=", "=").replace("\\n", "\n").replace("\\r", "\r")


def parse_extension(extension: str) -> dict[str, str]:
    """The ``key=value`` pairs of a CEF extension, values unescaped."""
    # One C-level split does the scanning: [text before the first key, key1, value1, key2, value2, ...].
    # The leading space lets the first key match like the others; the separating space before a key is
    # consumed by the pattern, so a value keeps any further spaces it ends with.
    parts = _KEY_SPLIT_RE.split(" " + extension)
    if len(parts) < 3:
        return {}
    values = parts[2::2]
    if "\\" in extension:
        values = [_unescape_value(value) if "\\" in value else value for value in values]
    return dict(zip(parts[1::2], values, strict=True))


def parse_cef(text: str) -> CefMessage:
    """Parse one CEF event; `text` starts with ``CEF:``.

    Raises:
        ValueError: not CEF, a header with fewer than seven fields, or a version that is not a number.
    """
    if not text.startswith("CEF:"):
        raise ValueError("not CEF: no 'CEF:' prefix")
    parts = text.split("|", _HEADER_FIELDS)
    extension = parts[_HEADER_FIELDS] if len(parts) > _HEADER_FIELDS else ""
    backslash = text.find("\\")
    if backslash >= 0 and backslash < len(text) - len(extension):
        parts, extension = _split_escaped_header(text)
    elif len(parts) > _HEADER_FIELDS:
        del parts[_HEADER_FIELDS]
    if len(parts) < _HEADER_FIELDS:
        raise ValueError(f"CEF header has {len(parts)} of {_HEADER_FIELDS} fields")
    version_text = parts[0][4:].strip()
    if not (version_text.isascii() and version_text.isdigit()):
        raise ValueError(f"CEF version {version_text[:20]!r} is not a number")
    return CefMessage(
        version=int(version_text),
        device_vendor=parts[1],
        device_product=parts[2],
        device_version=parts[3],
        signature_id=parts[4],
        name=parts[5],
        severity=parts[6].strip(),
        extension=parse_extension(extension),
    )
