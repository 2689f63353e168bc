"""The documented severity and facility tables."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsresponder.core.severity import Severity
from opsresponder.ingest.syslog.severity_map import (
    DEFAULT_PRI,
    FACILITY_NAMES,
    SYSLOG_SEVERITY_NAMES,
    cef_severity,
    facility_name,
    leef_severity,
    syslog_severity,
)

C, H, M, L, N = Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW, Severity.INFO


def test_syslog_table() -> None:
    assert [syslog_severity(code) for code in range(8)] == [C, C, C, H, M, L, N, N]
    assert SYSLOG_SEVERITY_NAMES == ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")


def test_syslog_out_of_range_is_clamped() -> None:
    assert syslog_severity(-1) is C
    assert syslog_severity(9) is N


def test_default_pri_is_user_notice() -> None:
    assert facility_name(DEFAULT_PRI >> 3) == "user"
    assert SYSLOG_SEVERITY_NAMES[DEFAULT_PRI & 7] == "notice"
    assert syslog_severity(DEFAULT_PRI & 7) is L


def test_cef_numeric_table() -> None:
    assert [cef_severity(str(n)) for n in range(11)] == [L, L, L, L, M, M, M, H, H, C, C]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Low", L),
        ("medium", M),
        ("HIGH", H),
        ("Very-High", C),
        ("very high", C),
        (" 7 ", H),
        ("05", M),
        ("8.0", H),
        ("Unknown", None),
        ("11", None),
        ("-1", None),
        ("", None),
    ],
)
def test_cef_values(value: str, expected: Severity | None) -> None:
    assert cef_severity(value) == expected


def test_leef_table() -> None:
    assert [leef_severity(str(n)) for n in range(11)] == [L, L, L, L, M, M, M, H, H, C, C]
    assert leef_severity("High") is None
    assert leef_severity(" 9") is C


def test_facilities() -> None:
    assert len(FACILITY_NAMES) == 24
    assert facility_name(0) == "kern"
    assert facility_name(4) == "auth"
    assert facility_name(10) == "authpriv"
    assert facility_name(23) == "local7"
    assert facility_name(24) == "facility24"


@given(st.text(max_size=12))
def test_mapping_functions_never_raise(value: str) -> None:
    assert cef_severity(value) in (None, *Severity)
    assert leef_severity(value) in (None, *Severity)
