"""LEEF parser and device timestamps: QRadar's samples, delimiters, devTime forms, properties."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsresponder.ingest.syslog.leef import java_format_to_strptime, parse_device_time, parse_leef


def test_qradar_leef_1_sample() -> None:
    msg = parse_leef(
        "LEEF:1.0|Microsoft|MSExchange|4.0 SP1|15345|src=192.0.2.0\tdst=172.50.123.1\tsev=5\tcat=anomaly\t"
        "srcPort=81\tdstPort=21\tusrName=joe.black"
    )
    assert msg.version == "1.0"
    assert (msg.device_vendor, msg.device_product, msg.device_version, msg.event_id) == (
        "Microsoft",
        "MSExchange",
        "4.0 SP1",
        "15345",
    )
    assert msg.delimiter == "\t"
    assert msg.attributes == {
        "src": "192.0.2.0",
        "dst": "172.50.123.1",
        "sev": "5",
        "cat": "anomaly",
        "srcPort": "81",
        "dstPort": "21",
        "usrName": "joe.black",
    }


def test_qradar_leef_2_caret_sample() -> None:
    msg = parse_leef(
        "LEEF:2.0|Lancope|StealthWatch|1.0|41|^|src=10.0.1.8^dst=10.0.0.5^sev=5^srcPort=81^dstPort=21"
    )
    assert msg.version == "2.0"
    assert msg.delimiter == "^"
    assert msg.attributes == {
        "src": "10.0.1.8",
        "dst": "10.0.0.5",
        "sev": "5",
        "srcPort": "81",
        "dstPort": "21",
    }


@pytest.mark.parametrize(
    ("field", "delimiter"),
    [
        ("x09", "\t"),
        ("0x09", "\t"),
        ("x5E", "^"),
        ("0x5e", "^"),
        ("X7C", "|"),
        ("\\t", "\t"),
        ("", "\t"),
        (";", ";"),
    ],
)
def test_leef_2_delimiter_forms(field: str, delimiter: str) -> None:
    body = delimiter.join(["a=1", "b=2"])
    msg = parse_leef(f"LEEF:2.0|V|P|1|E|{field}|{body}")
    assert msg.delimiter == delimiter
    assert msg.attributes == {"a": "1", "b": "2"}


def test_leef_2_pipe_delimiter() -> None:
    msg = parse_leef("LEEF:2.0|V|P|1|E|||a=1|b=2")
    assert msg.delimiter == "|"
    assert msg.attributes == {"a": "1", "b": "2"}


def test_leef_2_without_delimiter_field() -> None:
    msg = parse_leef("LEEF:2.0|V|P|1|E|a=1\tb=x|y")
    assert msg.delimiter == "\t"
    assert msg.attributes == {"a": "1", "b": "x|y"}


def test_leef_1_attributes_may_contain_pipes_and_equals() -> None:
    msg = parse_leef("LEEF:1.0|V|P|1|E|url=https://x/?a=1|2\tmsg=there are spaces in this message")
    assert msg.attributes == {"url": "https://x/?a=1|2", "msg": "there are spaces in this message"}


def test_piece_without_equals_rejoins_previous_value() -> None:
    msg = parse_leef("LEEF:2.0|V|P|1|E|^|msg=a^b^c^d=1")
    assert msg.attributes == {"msg": "a^b^c", "d": "1"}


def test_header_only() -> None:
    msg = parse_leef("LEEF:1.0|V|P|1|E")
    assert msg.attributes == {}
    assert msg.event_id == "E"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("CEF:0|a", "not LEEF"),
        ("LEEF:1.0|V|P", "3 of 5"),
        ("LEEF:3.0|V|P|1|E|", "version"),
        ("LEEF:2.0|V|P|1|E|xZZ|a=1", "delimiter"),
        ("LEEF:2.0|V|P|1|E|x00|a=1", "delimiter"),
    ],
)
def test_malformed(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_leef(text)


@pytest.mark.parametrize(
    ("value", "pattern", "expected"),
    [
        ("1704453753000", None, datetime(2024, 1, 5, 11, 22, 33, tzinfo=UTC)),
        ("1704453753", None, datetime(2024, 1, 5, 11, 22, 33, tzinfo=UTC)),
        ("Jan 05 2024 11:22:33", None, datetime(2024, 1, 5, 11, 22, 33, tzinfo=UTC)),
        ("Jan 5 2024 11:22:33.250 UTC", None, datetime(2024, 1, 5, 11, 22, 33, 250000, tzinfo=UTC)),
        ("Jan 05 2024 12:22:33 +0100", None, datetime(2024, 1, 5, 11, 22, 33, tzinfo=UTC)),
        ("Jan 05 2024 11:22:33", "MMM dd yyyy HH:mm:ss", datetime(2024, 1, 5, 11, 22, 33, tzinfo=UTC)),
        (
            "2024-01-05 12:22:33.123 +0100",
            "yyyy-MM-dd HH:mm:ss.SSS Z",
            datetime(2024, 1, 5, 11, 22, 33, 123000, tzinfo=UTC),
        ),
        ("05/01/2024 11:22", "dd/MM/yyyy HH:mm", datetime(2024, 1, 5, 11, 22, tzinfo=UTC)),
        ("2024-01-05T11:22:33Z", "yyyy-MM-dd'T'HH:mm:ssXXX", datetime(2024, 1, 5, 11, 22, 33, tzinfo=UTC)),
        ("2024-01-05T11:22:33+00:00", None, datetime(2024, 1, 5, 11, 22, 33, tzinfo=UTC)),
        # An unusable pattern falls back to the default forms.
        ("1704453753000", "qqq", datetime(2024, 1, 5, 11, 22, 33, tzinfo=UTC)),
    ],
)
def test_device_time(value: str, pattern: str | None, expected: datetime) -> None:
    assert parse_device_time(value, pattern) == expected


@pytest.mark.parametrize(
    "value", ["", "soon", "Feb 30 2024 00:00:00", "99999999999999999999999", "Foo 01 2024 00:00:00"]
)
def test_device_time_not_understood(value: str) -> None:
    assert parse_device_time(value) is None


def test_java_format_translation() -> None:
    assert java_format_to_strptime("MMM dd yyyy HH:mm:ss") == "%b %d %Y %H:%M:%S"
    assert java_format_to_strptime("yyyy-MM-dd'T'HH:mm:ss.SSSZ") == "%Y-%m-%dT%H:%M:%S.%f%z"
    assert java_format_to_strptime("'100%' yyyy") == "100%% %Y"
    assert java_format_to_strptime("D") is None


# --- properties -------------------------------------------------------------------------------------------

_DELIMITERS = {"\t": "", "^": "^", "x5E": "^", "0x7C": "|", ";": ";", "0x09": "\t"}
_keys = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,15}", fullmatch=True)
_header = st.text(st.characters(exclude_characters="|"), max_size=20)


@given(
    version=st.sampled_from(["1.0", "2.0"]),
    delimiter_field=st.sampled_from(sorted(_DELIMITERS)),
    header=st.tuples(_header, _header, _header, _header),
    attributes=st.dictionaries(_keys, st.text(max_size=30), max_size=6),
)
def test_generated_events_round_trip(
    version: str, delimiter_field: str, header: tuple[str, str, str, str], attributes: dict[str, str]
) -> None:
    delimiter = "\t" if version == "1.0" else (_DELIMITERS[delimiter_field] or "\t")
    delimiter_header = "" if version == "1.0" else f"{delimiter_field if delimiter_field != chr(9) else ''}|"
    values = {key: value.replace(delimiter, "") for key, value in attributes.items()}
    body = delimiter.join(f"{key}={value}" for key, value in values.items())
    text = f"LEEF:{version}|{'|'.join(header)}|{delimiter_header}{body}"
    if version == "2.0" and delimiter == "|" and not body:
        return  # "||" with nothing after it is the header-only form, a different message
    msg = parse_leef(text)
    assert (msg.device_vendor, msg.device_product, msg.device_version, msg.event_id) == header
    assert msg.delimiter == delimiter
    assert msg.attributes == values


_leef_shaped = st.lists(
    st.sampled_from(["LEEF:1.0|", "LEEF:2.0|", "|", "^", "x09", "0x", "=", "\t", "a", "sev=5", "devTime=1"]),
    max_size=20,
).map("".join)


@given(st.one_of(_leef_shaped, st.text(max_size=200).map(lambda t: "LEEF:" + t)))
def test_arbitrary_input_parses_or_raises_value_error(text: str) -> None:
    with contextlib.suppress(ValueError):
        parse_leef(text)


@given(st.text(max_size=40), st.none() | st.text(max_size=20))
def test_device_time_never_raises(value: str, pattern: str | None) -> None:
    result = parse_device_time(value, pattern)
    assert result is None or result.tzinfo is not None
