"""RFC 3164 parser: RFC examples, what rsyslog, syslog-ng, Cisco, Juniper send, year inference, properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsresponder.ingest.syslog.rfc3164 import infer_year, parse_rfc3164, parse_rfc3164_general

RECEIVED = datetime(2024, 6, 15, 12, 0, tzinfo=UTC)


def test_rfc_example_su() -> None:
    msg = parse_rfc3164(
        "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8", RECEIVED
    )
    assert msg.pri == 34
    assert msg.timestamp == datetime(2023, 10, 11, 22, 14, 15, tzinfo=UTC)
    assert msg.hostname == "mymachine"
    assert msg.app_name == "su"
    assert msg.procid is None
    assert msg.message == "'su root' failed for lonvick on /dev/pts/8"


def test_rfc_example_no_tag() -> None:
    msg = parse_rfc3164("<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!", RECEIVED)
    assert msg.timestamp == datetime(2024, 2, 5, 17, 32, 18, tzinfo=UTC)
    assert msg.hostname == "10.0.0.99"
    assert msg.app_name is None
    assert msg.message == "Use the BFG!"


def test_rfc_example_relayed_with_extra_year_text_is_kept() -> None:
    text = (
        "<165>Aug 24 05:34:00 CST 1987 mymachine myproc[10]: %% It's time to make the do-nuts.  %%  "
        "Ingredients: Mix=OK, Jam=OK Use=OK"
    )
    msg = parse_rfc3164(text, RECEIVED)
    assert msg.timestamp == datetime(2023, 8, 24, 5, 34, tzinfo=UTC)
    assert "It's time to make the do-nuts." in msg.message


def test_rfc_example_year_first() -> None:
    msg = parse_rfc3164(
        "<0>1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org 10.1.2.3 sched[0]: That's All Folks!",
        RECEIVED,
    )
    assert msg.pri == 0
    assert msg.timestamp == datetime(1990, 10, 22, 10, 52, 1, tzinfo=UTC)
    assert "That's All Folks!" in msg.message


def test_tag_with_pid() -> None:
    msg = parse_rfc3164("<86>Jan  5 11:22:33 web-01 sshd[12345]: Failed password for root", RECEIVED)
    assert (msg.hostname, msg.app_name, msg.procid) == ("web-01", "sshd", "12345")
    assert msg.message == "Failed password for root"


def test_tag_with_pid_without_colon() -> None:
    msg = parse_rfc3164("<86>Jan  5 11:22:33 web-01 sshd[12345] Failed", RECEIVED)
    assert (msg.app_name, msg.procid, msg.message) == ("sshd", "12345", "Failed")


def test_missing_hostname() -> None:
    msg = parse_rfc3164("<13>Jan  5 11:22:33 cron[77]: job done", RECEIVED)
    assert msg.hostname is None
    assert (msg.app_name, msg.procid, msg.message) == ("cron", "77", "job done")


def test_missing_hostname_tag_without_pid() -> None:
    msg = parse_rfc3164("<13>Jan  5 11:22:33 su: failed", RECEIVED)
    assert msg.hostname is None
    assert msg.app_name == "su"


def test_without_pri() -> None:
    msg = parse_rfc3164("Jan  5 11:22:33 host app: text", RECEIVED)
    assert msg.pri == -1
    assert (msg.hostname, msg.app_name, msg.message) == ("host", "app", "text")


def test_without_pri_and_timestamp() -> None:
    msg = parse_rfc3164("just some text", RECEIVED)
    assert (msg.pri, msg.timestamp, msg.hostname, msg.app_name) == (-1, None, None, None)
    assert msg.message == "just some text"


def test_pri_only_content() -> None:
    msg = parse_rfc3164("<13>hello world", RECEIVED)
    assert (msg.pri, msg.timestamp, msg.hostname) == (13, None, None)
    assert msg.message == "hello world"


def test_invalid_pri_is_content() -> None:
    msg = parse_rfc3164("<999>Jan  5 11:22:33 host app: x", RECEIVED)
    assert msg.pri == -1
    assert msg.message.startswith("<999>")


def test_rsyslog_forward_format_iso() -> None:
    msg = parse_rfc3164(
        "<30>2024-01-05T11:22:33.123456+01:00 web-01 systemd[1]: Started Session 42 of user root.", RECEIVED
    )
    assert msg.timestamp == datetime(2024, 1, 5, 10, 22, 33, 123456, tzinfo=UTC)
    assert (msg.hostname, msg.app_name, msg.procid) == ("web-01", "systemd", "1")
    assert msg.message == "Started Session 42 of user root."


def test_syslog_ng_loggen() -> None:
    msg = parse_rfc3164(
        "<38>2024-01-01T00:00:00+00:00 localhost prg00000[1234]: seq: 0000000000, thread: 0000, runid: "
        "1704067200, stamp: 2024-01-01T00:00:00 PADDPADDPADDPADD",
        RECEIVED,
    )
    assert msg.timestamp == datetime(2024, 1, 1, tzinfo=UTC)
    assert (msg.hostname, msg.app_name, msg.procid) == ("localhost", "prg00000", "1234")
    assert msg.message.startswith("seq: 0000000000, thread: 0000")


def test_util_linux_logger_rfc3164() -> None:
    msg = parse_rfc3164("<13>Jun 15 11:59:59 myhost ops: hello from logger", RECEIVED)
    assert msg.timestamp == datetime(2024, 6, 15, 11, 59, 59, tzinfo=UTC)
    assert (msg.hostname, msg.app_name, msg.message) == ("myhost", "ops", "hello from logger")


def test_fraction_in_bsd_timestamp() -> None:
    msg = parse_rfc3164("<13>Jun 15 11:59:59.250 myhost ops: x", RECEIVED)
    assert msg.timestamp == datetime(2024, 6, 15, 11, 59, 59, 250000, tzinfo=UTC)


def test_cisco_ios_sequence_and_mnemonic() -> None:
    msg = parse_rfc3164(
        "<189>123: *Mar  1 00:00:00.000: %LINK-3-UPDOWN: Interface GigabitEthernet0/1, changed state to down",
        RECEIVED,
    )
    assert msg.pri == 189
    assert msg.hostname is None
    assert msg.timestamp == datetime(2024, 3, 1, tzinfo=UTC)
    assert msg.cisco == {"sequence": 123, "facility": "LINK", "severity": 3, "mnemonic": "UPDOWN"}
    assert msg.message == "%LINK-3-UPDOWN: Interface GigabitEthernet0/1, changed state to down"


def test_cisco_ios_origin_id_hostname() -> None:
    msg = parse_rfc3164(
        "<189>45: R1: *Mar  1 00:12:34.567: %SYS-5-CONFIG_I: Configured from console by console", RECEIVED
    )
    assert msg.hostname == "R1"
    assert msg.timestamp == datetime(2024, 3, 1, 0, 12, 34, 567000, tzinfo=UTC)
    assert msg.cisco == {"sequence": 45, "facility": "SYS", "severity": 5, "mnemonic": "CONFIG_I"}


def test_cisco_timezone_and_synced_clock() -> None:
    msg = parse_rfc3164(
        "<187>2051: .Jan 10 12:00:00.123 UTC: %LINEPROTO-5-UPDOWN: Line protocol on Interface Gi0/1, "
        "changed state to down",
        RECEIVED,
    )
    assert msg.timestamp == datetime(2024, 1, 10, 12, 0, 0, 123000, tzinfo=UTC)
    assert msg.cisco == {"sequence": 2051, "facility": "LINEPROTO", "severity": 5, "mnemonic": "UPDOWN"}
    assert msg.message.startswith("%LINEPROTO-5-UPDOWN:")


def test_cisco_empty_sequence_nxos_year_first() -> None:
    msg = parse_rfc3164(
        "<189>: 2024 Jan 10 12:00:00 UTC: %ETHPORT-5-IF_DOWN_LINK_FAILURE: Interface Ethernet1/1 is down",
        RECEIVED,
    )
    assert msg.timestamp == datetime(2024, 1, 10, 12, tzinfo=UTC)
    assert msg.cisco == {"facility": "ETHPORT", "severity": 5, "mnemonic": "IF_DOWN_LINK_FAILURE"}


def test_cisco_asa_with_hostname_and_year() -> None:
    msg = parse_rfc3164(
        "<166>Jan 10 2024 12:00:00 fw1 : %ASA-6-302013: Built outbound TCP connection 123 for "
        "outside:1.2.3.4/443 (1.2.3.4/443) to inside:10.0.0.1/5000 (10.0.0.1/5000)",
        RECEIVED,
    )
    assert msg.hostname == "fw1"
    assert msg.timestamp == datetime(2024, 1, 10, 12, tzinfo=UTC)
    assert msg.cisco == {"facility": "ASA", "severity": 6, "mnemonic": "302013"}
    assert msg.message.startswith("%ASA-6-302013: Built outbound")


def test_cisco_asa_without_header() -> None:
    msg = parse_rfc3164("<166>%ASA-6-302013: Built outbound TCP connection", RECEIVED)
    assert msg.cisco == {"facility": "ASA", "severity": 6, "mnemonic": "302013"}
    assert msg.hostname is None


def test_cisco_ios_xr_facility_with_dash() -> None:
    msg = parse_rfc3164(
        "<187>Jan 10 12:00:00 rtr %PKT_INFRA-LINK-3-UPDOWN : Interface GigabitEthernet0/0/0/1, changed state",
        RECEIVED,
    )
    assert msg.hostname == "rtr"
    assert msg.cisco == {"facility": "PKT_INFRA-LINK", "severity": 3, "mnemonic": "UPDOWN"}


def test_cisco_behind_a_relay() -> None:
    msg = parse_rfc3164(
        "<189>Jan 10 12:00:01 10.1.1.1 123: *Jan 10 12:00:00.000: %SYS-5-CONFIG_I: Configured from console",
        RECEIVED,
    )
    assert msg.hostname == "10.1.1.1"
    assert msg.timestamp == datetime(2024, 1, 10, 12, 0, 1, tzinfo=UTC)
    assert msg.cisco == {"sequence": 123, "facility": "SYS", "severity": 5, "mnemonic": "CONFIG_I"}
    assert msg.message.startswith("%SYS-5-CONFIG_I")


def test_juniper() -> None:
    msg = parse_rfc3164(
        "<28>Jan 10 12:00:00 router1 mib2d[1234]: SNMP_TRAP_LINK_DOWN: ifIndex 516, ifAdminStatus up(1), "
        "ifOperStatus down(2), ifName ge-0/0/1",
        RECEIVED,
    )
    assert (msg.hostname, msg.app_name, msg.procid) == ("router1", "mib2d", "1234")
    assert msg.message.startswith("SNMP_TRAP_LINK_DOWN: ifIndex 516")


def test_cef_payload_is_not_a_hostname_or_tag() -> None:
    msg = parse_rfc3164("<134>Jan 10 12:00:00 CEF:0|Vendor|Product|1|100|name|5|src=1.2.3.4", RECEIVED)
    assert msg.hostname is None
    assert msg.app_name is None
    assert msg.message.startswith("CEF:0|")


def test_cef_payload_after_host_and_tag() -> None:
    msg = parse_rfc3164("<134>Jan 10 12:00:00 fw app: CEF:0|V|P|1|100|n|5|a=b", RECEIVED)
    assert (msg.hostname, msg.app_name, msg.message) == ("fw", "app", "CEF:0|V|P|1|100|n|5|a=b")


def test_leef_after_host() -> None:
    msg = parse_rfc3164("<13>Jan 18 11:07:53 192.168.1.1 LEEF:1.0|QRadar|QRM|1.0|NEW_PORT|src=1", RECEIVED)
    assert msg.hostname == "192.168.1.1"
    assert msg.app_name is None
    assert msg.message.startswith("LEEF:1.0|")


def test_ipv6_hostname() -> None:
    msg = parse_rfc3164("<13>Jan 18 11:07:53 2001:db8::1 app: x", RECEIVED)
    assert msg.hostname == "2001:db8::1"
    assert msg.app_name == "app"


def test_invalid_date_is_recognised_but_none() -> None:
    msg = parse_rfc3164("<13>Feb 30 11:07:53 host app: x", RECEIVED)
    assert msg.timestamp is None
    assert (msg.hostname, msg.app_name) == ("host", "app")


@pytest.mark.parametrize(
    ("month", "day", "received", "expected_year"),
    [
        (12, 31, datetime(2024, 1, 1, 0, 5, tzinfo=UTC), 2023),  # December message received in January
        (6, 15, datetime(2024, 6, 15, 12, tzinfo=UTC), 2024),
        (6, 17, datetime(2024, 6, 15, 12, tzinfo=UTC), 2023),  # more than a day in the future
        (6, 16, datetime(2024, 6, 15, 12, tzinfo=UTC), 2024),  # less than a day ahead: sender clock skew
        (1, 1, datetime(2023, 12, 31, 23, 59, tzinfo=UTC), 2024),  # sender ahead across midnight
        (2, 29, datetime(2025, 3, 1, tzinfo=UTC), 2024),  # Feb 29 in a non-leap year: the last leap year
        (2, 29, datetime(2024, 2, 1, tzinfo=UTC), 2020),  # Feb 29 ahead in a leap year: the leap year before
    ],
)
def test_year_inference(month: int, day: int, received: datetime, expected_year: int) -> None:
    value = infer_year(month, day, 0, 0, 30, 0, received)
    assert value is not None
    assert (value.year, value.month, value.day) == (expected_year, month, day)


def test_year_inference_impossible_date() -> None:
    assert infer_year(4, 31, 0, 0, 0, 0, RECEIVED) is None


# --- properties -------------------------------------------------------------------------------------------

_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


@settings(deadline=None)
@given(
    pri=st.integers(0, 191),
    when=st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2098, 12, 31)),
    skew=st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(days=300)),
    hostname=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9.-]{0,30}", fullmatch=True),
    tag=st.from_regex(r"[A-Za-z][A-Za-z0-9_/.-]{0,20}", fullmatch=True),
    pid=st.none() | st.integers(0, 10**7).map(str),
    message=st.text(max_size=200),
)
def test_generated_bsd_messages_round_trip(
    pri: int, when: datetime, skew: timedelta, hostname: str, tag: str, pid: str | None, message: str
) -> None:
    when = when.replace(microsecond=0, tzinfo=UTC)
    stamp = f"{_MONTHS[when.month - 1]} {when.day:2d} {when:%H:%M:%S}"
    text = f"<{pri}>{stamp} {hostname} {tag}{f'[{pid}]' if pid is not None else ''}: {message}"
    msg = parse_rfc3164(text, when + skew)
    assert msg.pri == pri
    assert msg.timestamp == when
    assert (msg.hostname, msg.app_name, msg.procid, msg.message) == (hostname, tag, pid, message)


_PIECES = st.sampled_from(
    [
        "<13>",
        "<189>",
        "123: ",
        ": ",
        "*",
        ".",
        "Jan ",
        "Mar  1 ",
        "2024 ",
        "00:00:00",
        ".123",
        " UTC: ",
        "2024-01-01T00:00:00Z ",
        "host ",
        "app[12]: ",
        "app: ",
        "%LINK-3-UPDOWN: ",
        "%ASA-6-1: ",
        "CEF:0|",
        "LEEF:1.0|",
        " ",
        ":",
        "[",
        "]",
        "x",
        "\u0663",
        "\n",
    ]
)
_shaped = st.lists(_PIECES, max_size=12).map("".join)


@given(st.one_of(_shaped, st.text(max_size=200)), st.datetimes(timezones=st.just(UTC)))
def test_never_raises(text: str, received: datetime) -> None:
    msg = parse_rfc3164(text, received)
    assert msg.message in text
    assert msg.timestamp is None or msg.timestamp.tzinfo is UTC


@given(st.one_of(_shaped, st.text(max_size=120)))
def test_fast_path_agrees_with_general_path(text: str) -> None:
    assert parse_rfc3164(text, RECEIVED) == parse_rfc3164_general(text, RECEIVED)


@settings(deadline=None)
@given(
    pri=st.integers(0, 255),
    stamp=st.sampled_from(["Jan  5 11:22:33", "Feb 30 11:22:33", "Jun 15 25:00:00", "2024-01-05T11:22:33Z"]),
    hostname=st.text(st.sampled_from(list("ab1.-:[]%")), min_size=1, max_size=6),
    tag=st.text(st.sampled_from(list("ab1:[]%/ \u0663")), min_size=1, max_size=8),
    rest=st.text(max_size=20),
)
def test_fast_path_agrees_with_general_path_near_its_edges(
    pri: int, stamp: str, hostname: str, tag: str, rest: str
) -> None:
    text = f"<{pri}>{stamp} {hostname} {tag}: {rest}"
    assert parse_rfc3164(text, RECEIVED) == parse_rfc3164_general(text, RECEIVED)
