"""How syslog, CEF and LEEF severities and facilities map onto OpsResponder's five levels.

These tables are the reference the README points to; change them here and nowhere else.

Syslog severity (the low 3 bits of PRI, RFC 5424 §6.2.1 Table 2; also the digit of Cisco's
``%FACILITY-SEVERITY-MNEMONIC``, which uses the same 0-7 scale):

====  ==========  =============
code  name        OpsResponder
====  ==========  =============
0     emerg       critical
1     alert       critical
2     crit        critical
3     err         high
4     warning     medium
5     notice      low
6     info        info
7     debug       info
====  ==========  =============

A message without PRI is ``user.notice`` (PRI 13, RFC 3164 §4.3.3), so it is ``low``.

CEF severity (``CEF:...|Severity|``) and LEEF ``sev``. The bands are ArcSight's ("Implementing ArcSight
CEF", rev. 25, Header field *Severity*: "0-3 = Low, 4-6 = Medium, 7-8 = High, 9-10 = Very-High"); QRadar's
LEEF ``sev`` uses the same 0-10 scale (IBM "LEEF event components", 1 lowest, 10 highest), so one table
serves both. Very-High is OpsResponder's ``critical``:

==============  ===========  =============
number          CEF name     OpsResponder
==============  ===========  =============
0, 1, 2, 3      Low          low
4, 5, 6         Medium       medium
7, 8            High         high
9, 10           Very-High    critical
==============  ===========  =============

Names are matched case-insensitively, and ``Very High``/``VeryHigh``/``Very_High`` are taken as Very-High.
Anything else (``Unknown``, ``11``, ``-1``, ``high-ish``) maps to ``None``: the decoder then falls back to the
syslog PRI severity of the envelope (``low`` when there is none), and keeps the raw value in metadata.

Facility names (the high bits of PRI, RFC 5424 §6.2.1 Table 1). 0-11 and 16-23 are the names of
glibc's ``<syslog.h>``; 12-15 have no glibc name and use FreeBSD's (``ntp``, ``security``, ``console``) and
RFC 5424's description for 15 (``clock``).
"""

from __future__ import annotations

from typing import Final

from opsresponder.core.severity import Severity

SYSLOG_SEVERITY_NAMES: Final[tuple[str, ...]] = (
    "emerg",
    "alert",
    "crit",
    "err",
    "warning",
    "notice",
    "info",
    "debug",
)

FACILITY_NAMES: Final[tuple[str, ...]] = (
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "clock",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
)

DEFAULT_PRI: Final = 13
"""``user.notice``: what RFC 3164 §4.3.3 says a relay assumes for a message without a valid PRI."""

_SYSLOG_TO_SEVERITY: Final[tuple[Severity, ...]] = (
    Severity.CRITICAL,
    Severity.CRITICAL,
    Severity.CRITICAL,
    Severity.HIGH,
    Severity.MEDIUM,
    Severity.LOW,
    Severity.INFO,
    Severity.INFO,
)


def _build_scale_table() -> dict[str, Severity]:
    table: dict[str, Severity] = {}
    for number in range(11):
        if number <= 3:
            level = Severity.LOW
        elif number <= 6:
            level = Severity.MEDIUM
        elif number <= 8:
            level = Severity.HIGH
        else:
            level = Severity.CRITICAL
        table[str(number)] = level
        # Some senders zero-pad ("05") or send a float ("5.0"); both are unambiguous.
        table[f"{number:02d}"] = level
        table[f"{number}.0"] = level
    return table


_SCALE_0_10: Final[dict[str, Severity]] = _build_scale_table()

_CEF_NAMES: Final[dict[str, Severity]] = {
    "low": Severity.LOW,
    "medium": Severity.MEDIUM,
    "high": Severity.HIGH,
    "very-high": Severity.CRITICAL,
    "very high": Severity.CRITICAL,
    "veryhigh": Severity.CRITICAL,
    "very_high": Severity.CRITICAL,
}

_CEF_TABLE: Final[dict[str, Severity]] = {**_SCALE_0_10, **_CEF_NAMES}


def syslog_severity(code: int) -> Severity:
    """The level of a syslog severity code (0-7); codes outside 0-7 are clamped.

    Args:
        code: the PRI severity (``pri & 7``) or a Cisco mnemonic's severity digit.
    """
    if code < 0:
        code = 0
    elif code > 7:
        code = 7
    return _SYSLOG_TO_SEVERITY[code]


def cef_severity(value: str) -> Severity | None:
    """The level of a CEF header severity (``0``-``10`` or Low/Medium/High/Very-High), or None if unknown."""
    level = _CEF_TABLE.get(value)
    if level is None:
        level = _CEF_TABLE.get(value.strip().lower())
    return level


def leef_severity(value: str) -> Severity | None:
    """The level of a LEEF ``sev`` attribute (``0``-``10``), or None if it is not on that scale."""
    level = _SCALE_0_10.get(value)
    if level is None:
        level = _SCALE_0_10.get(value.strip())
    return level


def facility_name(code: int) -> str:
    """The name of a facility code (0-23); anything else is ``facility<code>`` so nothing is lost."""
    if 0 <= code < len(FACILITY_NAMES):
        return FACILITY_NAMES[code]
    return f"facility{code}"
