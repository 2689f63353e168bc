"""RFC 5424 parser: the RFC's own examples, real senders, structured data escapes, and properties."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsresponder.ingest.syslog.rfc5424 import (
    _parse_structured_data_slowly,
    parse_pri,
    parse_rfc5424,
    parse_structured_data,
    parse_timestamp,
)

BOM = "\ufeff"


# RFC 5424 §6.5, examples 1-4.
def test_rfc_example_1_no_structured_data_with_bom() -> None:
    msg = parse_rfc5424(
        f"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - {BOM}'su root' failed for "
        "lonvick on /dev/pts/8"
    )
    assert msg.pri == 34
    assert msg.timestamp == datetime(2003, 10, 11, 22, 14, 15, 3000, tzinfo=UTC)
    assert msg.hostname == "mymachine.example.com"
    assert msg.app_name == "su"
    assert msg.procid is None
    assert msg.msgid == "ID47"
    assert msg.structured_data == {}
    assert msg.message == "'su root' failed for lonvick on /dev/pts/8"


def test_rfc_example_2_offset_and_microseconds() -> None:
    msg = parse_rfc5424(
        "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts."
    )
    assert msg.timestamp == datetime(2003, 8, 24, 12, 14, 15, 3, tzinfo=UTC)
    assert msg.hostname == "192.0.2.1"
    assert msg.app_name == "myproc"
    assert msg.procid == "8710"
    assert msg.msgid is None
    assert msg.message == "%% It's time to make the do-nuts."


def test_rfc_example_3_structured_data_and_message() -> None:
    msg = parse_rfc5424(
        "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
        '[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] '
        f"{BOM}An application event log entry..."
    )
    assert msg.structured_data == {
        "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"}
    }
    assert msg.message == "An application event log entry..."


def test_rfc_example_4_two_elements_no_message() -> None:
    msg = parse_rfc5424(
        "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
        '[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"]'
        '[examplePriority@32473 class="high"]'
    )
    assert msg.structured_data == {
        "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"},
        "examplePriority@32473": {"class": "high"},
    }
    assert msg.message == ""


def test_nilvalue_everywhere() -> None:
    msg = parse_rfc5424("<13>1 - - - - - -")
    assert (msg.timestamp, msg.hostname, msg.app_name, msg.procid, msg.msgid) == (None,) * 5
    assert msg.structured_data == {}
    assert msg.message == ""


def test_nilvalue_everywhere_with_message() -> None:
    msg = parse_rfc5424("<13>1 - - - - - - hello")
    assert msg.message == "hello"


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("1985-04-12T23:20:50.52Z", datetime(1985, 4, 12, 23, 20, 50, 520000, tzinfo=UTC)),
        ("1985-04-12T19:20:50.52-04:00", datetime(1985, 4, 12, 23, 20, 50, 520000, tzinfo=UTC)),
        ("2003-10-11T22:14:15.003Z", datetime(2003, 10, 11, 22, 14, 15, 3000, tzinfo=UTC)),
        ("2003-08-24T05:14:15.000003-07:00", datetime(2003, 8, 24, 12, 14, 15, 3, tzinfo=UTC)),
        ("2024-01-01T00:00:00+05:30", datetime(2023, 12, 31, 18, 30, tzinfo=UTC)),
        ("2024-01-01t00:00:00z", datetime(2024, 1, 1, tzinfo=UTC)),
        ("2024-01-01T00:00:00", datetime(2024, 1, 1, tzinfo=UTC)),
        # More than 6 fraction digits is not RFC 5424, but Go and Java senders do it: truncated.
        ("2003-08-24T05:14:15.000000003-07:00", datetime(2003, 8, 24, 12, 14, 15, tzinfo=UTC)),
    ],
)
def test_timestamps(token: str, expected: datetime) -> None:
    value = parse_timestamp(token)
    assert value == expected
    assert value.tzinfo is UTC


@pytest.mark.parametrize(
    "token",
    ["2024-01-01", "yesterday", "2024-13-01T00:00:00Z", "1990-12-31T23:59:60Z", "0001-01-01T00:00:00+01:00"],
)
def test_bad_timestamp_is_reported_not_fatal(token: str) -> None:
    msg = parse_rfc5424(f"<13>1 {token} host app - - - hello")
    assert msg.timestamp is None
    assert msg.timestamp_error is not None
    assert msg.hostname == "host"
    assert msg.message == "hello"


def test_structured_data_escapes() -> None:
    msg = parse_rfc5424(
        r'<13>1 - h a - - [x@1 quote="say \"hi\"" back="C:\\temp" bracket="[a\]" other="\n stays"] m'
    )
    assert msg.structured_data == {
        "x@1": {"quote": 'say "hi"', "back": "C:\\temp", "bracket": "[a]", "other": "\\n stays"}
    }
    assert msg.message == "m"


def test_structured_data_value_with_unescaped_bracket_and_spaces() -> None:
    msg = parse_rfc5424('<13>1 - h a - - [x@1 v="a ] b = c"] m')
    assert msg.structured_data == {"x@1": {"v": "a ] b = c"}}


def test_repeated_param_becomes_list_and_repeated_id_merges() -> None:
    msg = parse_rfc5424('<13>1 - h a - - [x@1 ip="1" ip="2" ip="3"][y a="1"][x@1 other="o"]')
    assert msg.structured_data == {"x@1": {"ip": ["1", "2", "3"], "other": "o"}, "y": {"a": "1"}}


def test_element_without_params() -> None:
    msg = parse_rfc5424("<13>1 - h a - - [meta][origin] text")
    assert msg.structured_data == {"meta": {}, "origin": {}}
    assert msg.message == "text"


def test_space_between_elements_starts_the_message() -> None:
    # RFC 5424 §6.3.5 calls this invalid structured data; the second element is read as MSG.
    msg = parse_rfc5424('<13>1 - h a - - [a x="1"] [b y="2"]')
    assert msg.structured_data == {"a": {"x": "1"}}
    assert msg.message == '[b y="2"]'


def test_missing_structured_data_field_is_read_as_message() -> None:
    msg = parse_rfc5424("<13>1 2024-01-01T00:00:00Z host app 1 ID message right after msgid")
    assert msg.structured_data == {}
    assert msg.message == "message right after msgid"


def test_juniper_structured() -> None:
    msg = parse_rfc5424(
        "<165>1 2007-04-16T19:18:51.024Z junos-router mgd 3046 UI_DBASE_LOGOUT_EVENT "
        "[junos@2636.1.1.1.2.18 username=\"regress\"] User 'regress' exiting configuration mode"
    )
    assert msg.structured_data == {"junos@2636.1.1.1.2.18": {"username": "regress"}}
    assert msg.msgid == "UI_DBASE_LOGOUT_EVENT"
    assert msg.message == "User 'regress' exiting configuration mode"


def test_util_linux_logger_rfc5424() -> None:
    msg = parse_rfc5424(
        '<13>1 2024-01-05T11:22:33.123456+01:00 myhost ops - - [timeQuality tzKnown="1" isSynced="0"] hello'
    )
    assert msg.timestamp == datetime(2024, 1, 5, 10, 22, 33, 123456, tzinfo=UTC)
    assert msg.structured_data == {"timeQuality": {"tzKnown": "1", "isSynced": "0"}}
    assert msg.message == "hello"


def test_syslog_ng_loggen_rfc5424() -> None:
    msg = parse_rfc5424(
        '<38>1 2024-01-01T00:00:00+00:00 localhost prg00000 1234 - [meta sequenceId="1"] seq: 0000000000, '
        "thread: 0000, runid: 1704067200, stamp: 2024-01-01T00:00:00 PADDPADDPADD"
    )
    assert (msg.hostname, msg.app_name, msg.procid) == ("localhost", "prg00000", "1234")
    assert msg.structured_data == {"meta": {"sequenceId": "1"}}
    assert msg.message.startswith("seq: 0000000000")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("no pri", "PRI"),
        ("<13>2 - - - - - -", "version"),
        ("<13>1 - - -", "truncated"),
        ("<13>1 -  - - - - -", "empty"),
        ('<13>1 - h a - - [x y="1"', "unterminated"),
        ('<13>1 - h a - - [x y="1]', "unterminated"),
        ("<13>1 - h a - - [x y=1]", "unquoted"),
        ('<13>1 - h a - - [x ="1"]', "PARAM-NAME"),
        ('<13>1 - h a - - [x y="1"]junk', "no space"),
        ('<13>1 - h a - - [="1"]', "SD-ID"),
        ("<13>1 - h a - - [x", "unterminated"),
    ],
)
def test_malformed_messages_raise_value_error_with_reason(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_rfc5424(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<0>x", (0, 3)),
        ("<191>x", (191, 5)),
        ("<013>x", (13, 5)),
        ("<192>x", (-1, 0)),
        ("<>x", (-1, 0)),
        ("<1234>x", (-1, 0)),
        ("<a>x", (-1, 0)),
        ("<\u0663>x", (-1, 0)),
        ("13>x", (-1, 0)),
        ("<13", (-1, 0)),
    ],
)
def test_parse_pri(text: str, expected: tuple[int, int]) -> None:
    assert parse_pri(text) == expected


# --- properties -------------------------------------------------------------------------------------------

_PRINTUSASCII = st.characters(min_codepoint=33, max_codepoint=126)
_SD_NAME = st.text(
    st.characters(min_codepoint=33, max_codepoint=126, exclude_characters='= ]"'), min_size=1, max_size=32
)


def _header_field(max_size: int) -> st.SearchStrategy[str | None]:
    return st.none() | st.text(_PRINTUSASCII, min_size=1, max_size=max_size).filter(lambda s: s != "-")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


_timestamps = st.none() | st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(9998, 12, 30), timezones=st.just(UTC)
).flatmap(
    lambda dt: st.sampled_from(
        [UTC, timezone(timedelta(hours=-7)), timezone(timedelta(hours=5, minutes=30))]
    ).map(lambda tz: dt.astimezone(tz))
)
_structured = st.dictionaries(
    _SD_NAME, st.dictionaries(_SD_NAME, st.text(max_size=30), max_size=4), max_size=3
)


@settings(deadline=None)
@given(
    pri=st.integers(0, 191),
    timestamp=_timestamps,
    hostname=_header_field(255),
    app_name=_header_field(48),
    procid=_header_field(128),
    msgid=_header_field(32),
    structured=_structured,
    message=st.text(max_size=200),
    bom=st.booleans(),
)
def test_generated_messages_round_trip(
    pri: int,
    timestamp: datetime | None,
    hostname: str | None,
    app_name: str | None,
    procid: str | None,
    msgid: str | None,
    structured: dict[str, dict[str, str]],
    message: str,
    bom: bool,
) -> None:
    def nil(value: str | None) -> str:
        return "-" if value is None else value

    stamp = "-" if timestamp is None else timestamp.isoformat()
    sd = (
        "".join(
            "[" + sd_id + "".join(f' {name}="{_escape(value)}"' for name, value in params.items()) + "]"
            for sd_id, params in structured.items()
        )
        or "-"
    )
    text = f"<{pri}>1 {stamp} {nil(hostname)} {nil(app_name)} {nil(procid)} {nil(msgid)} {sd}"
    if message or bom:
        text += " " + (BOM if bom else "") + message
    parsed = parse_rfc5424(text)
    assert parsed.pri == pri
    assert parsed.timestamp == timestamp
    assert (parsed.hostname, parsed.app_name, parsed.procid, parsed.msgid) == (
        hostname,
        app_name,
        procid,
        msgid,
    )
    assert parsed.structured_data == structured
    assert parsed.message == message


@given(st.text(max_size=300))
def test_arbitrary_text_parses_or_raises_value_error(text: str) -> None:
    with contextlib.suppress(ValueError):
        parse_rfc5424(text)


@given(st.text(alphabet=st.sampled_from(list('<>1 -[]="\\ab@x\n')), max_size=120))
def test_syslog_shaped_text_parses_or_raises_value_error(text: str) -> None:
    with contextlib.suppress(ValueError):
        parse_rfc5424("<13>1 - h a - - " + text)


@given(st.text(alphabet=st.sampled_from(list('[]= "\\ab@.\n')), max_size=80))
def test_fast_and_slow_structured_data_agree(text: str) -> None:
    text = "[" + text

    def run(parse: object) -> object:
        try:
            return parse(text, 0)  # type: ignore[operator]
        except ValueError:
            return "error"

    assert run(parse_structured_data) == run(_parse_structured_data_slowly)
