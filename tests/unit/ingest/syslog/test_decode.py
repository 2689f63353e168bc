"""SyslogDecoder: format detection, the Event each format yields, failures kept, and properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsresponder.config import ParsingRuleConfig
from opsresponder.core.errors import ConfigError
from opsresponder.core.event import Event, is_event_type
from opsresponder.core.severity import Severity
from opsresponder.ingest.syslog.decode import SyslogDecoder, peer_host, title_from

RECEIVED = datetime(2024, 1, 5, 12, 0, tzinfo=UTC)
PEER = "10.0.0.5:514"
SPEC_RULES = [
    ParsingRuleConfig(
        pattern="Failed password for .* from (.*) port",
        event_type="authentication_failure",
        severity="medium",
        extract_fields=["source_ip"],
    ),
    ParsingRuleConfig(pattern="Out of disk space", event_type="disk_space_critical", severity="critical"),
]


@pytest.fixture(scope="module")
def decoder() -> SyslogDecoder:
    return SyslogDecoder(SPEC_RULES)


def decode(
    decoder: SyslogDecoder, data: bytes | str, peer: str | None = PEER, transport: str = "udp"
) -> Event:
    raw = data.encode() if isinstance(data, str) else data
    return decoder.decode(raw, peer, RECEIVED, transport)


def test_rfc5424_event(decoder: SyslogDecoder) -> None:
    e = decode(
        decoder,
        b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 99 ID47 "
        b'[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] '
        b"\xef\xbb\xbfAn application event log entry...\n",
    )
    assert (e.source, e.source_type, e.event_type) == ("syslog", "syslog", "syslog")
    assert e.severity is Severity.LOW  # local4.notice
    assert e.host == "mymachine.example.com"
    assert e.service == "evntslog"
    assert e.title == "An application event log entry..."
    assert e.description == "An application event log entry..."
    assert e.occurred_at == datetime(2003, 10, 11, 22, 14, 15, 3000, tzinfo=UTC)
    assert e.received_at == RECEIVED
    assert e.raw is not None
    assert e.raw.startswith("<165>1 2003")
    assert e.fingerprint == ""
    assert e.metadata == {
        "peer": PEER,
        "transport": "udp",
        "format": "rfc5424",
        "facility": "local4",
        "syslog_severity": "notice",
        "app_name": "evntslog",
        "procid": "99",
        "msgid": "ID47",
        "structured_data": {
            "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"}
        },
    }


def test_rfc5424_nil_hostname_falls_back_to_peer_and_title_to_app(decoder: SyslogDecoder) -> None:
    e = decode(decoder, "<11>1 - - myapp - - -", peer="[2001:db8::5]:5514")
    assert e.host == "2001:db8::5"
    assert e.title == "myapp"
    assert e.severity is Severity.HIGH  # user.err
    assert e.occurred_at == RECEIVED
    assert e.description == ""


def test_rfc5424_all_nil_title_default(decoder: SyslogDecoder) -> None:
    e = decode(decoder, "<14>1 - - - - - -", peer=None)
    assert e.title == "syslog message"
    assert e.host is None
    assert e.metadata["peer"] is None


def test_rfc5424_bad_timestamp_kept(decoder: SyslogDecoder) -> None:
    e = decode(decoder, "<14>1 2024-99-99T00:00:00Z host app - - - hi")
    assert e.occurred_at == RECEIVED
    assert "invalid timestamp" in e.metadata["timestamp_error"]
    assert e.metadata["format"] == "rfc5424"


def test_rfc3164_event_with_spec_rule(decoder: SyslogDecoder) -> None:
    e = decode(
        decoder,
        "<38>Jan  5 11:22:33 web-01 sshd[4242]: Failed password for root from 203.0.113.7 port 22 ssh2",
    )
    assert e.event_type == "authentication_failure"
    assert e.severity is Severity.MEDIUM
    assert e.host == "web-01"
    assert e.service == "sshd"
    assert e.occurred_at == datetime(2024, 1, 5, 11, 22, 33, tzinfo=UTC)
    assert e.metadata["source_ip"] == "203.0.113.7"
    assert e.metadata["format"] == "rfc3164"
    assert e.metadata["facility"] == "auth"
    assert e.metadata["syslog_severity"] == "info"
    assert (e.metadata["app_name"], e.metadata["procid"]) == ("sshd", "4242")
    assert e.metadata["parsing_rule"]["index"] == 0


def test_disk_space_rule(decoder: SyslogDecoder) -> None:
    e = decode(decoder, "<12>Jan  5 11:22:33 db-01 kernel: Out of disk space on /var")
    assert e.event_type == "disk_space_critical"
    assert e.severity is Severity.CRITICAL


def test_december_message_received_in_january(decoder: SyslogDecoder) -> None:
    e = decoder.decode(b"<13>Dec 31 23:59:58 h a: x", PEER, datetime(2024, 1, 1, 0, 0, 5, tzinfo=UTC), "udp")
    assert e.occurred_at == datetime(2023, 12, 31, 23, 59, 58, tzinfo=UTC)


def test_no_pri_defaults_to_user_notice(decoder: SyslogDecoder) -> None:
    e = decode(decoder, "plain text from a misconfigured sender")
    assert e.severity is Severity.LOW
    assert e.metadata["facility"] == "user"
    assert e.metadata["syslog_severity"] == "notice"
    assert e.metadata["format"] == "rfc3164"
    assert e.host == "10.0.0.5"
    assert e.title == "plain text from a misconfigured sender"


def test_cisco_severity_digit_is_used(decoder: SyslogDecoder) -> None:
    e = decode(
        decoder, "<189>123: *Mar  1 00:00:00.000: %LINK-3-UPDOWN: Interface Gi0/1, changed state to down"
    )
    assert e.severity is Severity.HIGH
    assert e.metadata["syslog_severity"] == "err"
    assert e.metadata["cisco"] == {"sequence": 123, "facility": "LINK", "severity": 3, "mnemonic": "UPDOWN"}
    assert e.title == "%LINK-3-UPDOWN: Interface Gi0/1, changed state to down"
    assert e.occurred_at == datetime(2023, 3, 1, tzinfo=UTC)


def test_bare_cef(decoder: SyslogDecoder) -> None:
    e = decode(
        decoder,
        "CEF:0|Security|threatmanager|1.0|100|worm successfully stopped|10|src=10.0.0.1 dst=2.1.2.2 spt=1232 "
        "rt=1704453753000 dvchost=ids-01",
    )
    assert e.event_type == "cef"
    assert e.severity is Severity.CRITICAL
    assert e.title == "worm successfully stopped"
    assert e.host == "ids-01"
    assert e.service == "threatmanager"
    assert e.occurred_at == datetime(2024, 1, 5, 11, 22, 33, tzinfo=UTC)
    assert e.metadata["format"] == "cef"
    assert e.metadata["envelope"] == "none"
    assert e.metadata["cef"] == {
        "version": 0,
        "device_vendor": "Security",
        "device_product": "threatmanager",
        "device_version": "1.0",
        "signature_id": "100",
        "name": "worm successfully stopped",
        "severity": "10",
        "extension": {
            "src": "10.0.0.1",
            "dst": "2.1.2.2",
            "spt": "1232",
            "rt": "1704453753000",
            "dvchost": "ids-01",
        },
    }


def test_cef_inside_rfc3164_without_pri(decoder: SyslogDecoder) -> None:
    e = decode(
        decoder,
        r"Sep 19 08:26:10 host CEF:0|security|threatmanager|1.0|100|detected a \| in message|Medium|"
        r"src=10.0.0.1 act=blocked a | dst=1.1.1.1",
    )
    assert e.event_type == "cef"
    assert e.severity is Severity.MEDIUM
    assert e.host == "host"
    assert e.title == "detected a | in message"
    assert e.occurred_at == datetime(2023, 9, 19, 8, 26, 10, tzinfo=UTC)
    assert e.metadata["envelope"] == "rfc3164"
    assert e.metadata["cef"]["extension"]["act"] == "blocked a |"


def test_cef_inside_rfc5424_keeps_envelope_metadata(decoder: SyslogDecoder) -> None:
    e = decode(
        decoder,
        '<134>1 2024-01-05T10:00:00Z fw-01 cef - - [x a="1"] CEF:0|V|P|1|42|Port scan|Unknown|src=1.2.3.4',
    )
    assert e.event_type == "cef"
    assert e.severity is Severity.INFO  # unknown CEF severity: PRI severity (local0.info)
    assert e.host == "fw-01"
    assert e.occurred_at == datetime(2024, 1, 5, 10, tzinfo=UTC)
    assert e.metadata["envelope"] == "rfc5424"
    assert e.metadata["structured_data"] == {"x": {"a": "1"}}
    assert e.metadata["app_name"] == "cef"
    assert e.metadata["cef"]["severity"] == "Unknown"


def test_cef_rule_on_cef_name(decoder: SyslogDecoder) -> None:
    rules = [
        ParsingRuleConfig(
            pattern="^Port scan$",
            event_type="port_scan",
            severity="high",
            match_on="cef.name",
            title="Port scan from {src}",
        ),
        ParsingRuleConfig(pattern=r"src=(\S+)", event_type="never", severity="low", extract_fields=["src"]),
    ]
    e = SyslogDecoder(rules).decode(b"CEF:0|V|P|1|42|Port scan|3|src=1.2.3.4", PEER, RECEIVED, "tcp")
    assert e.event_type == "port_scan"
    assert e.severity is Severity.HIGH
    assert e.title == "Port scan from"  # {src} is not a top-level field: only extracted fields and scalars
    assert e.metadata["transport"] == "tcp"


def test_broken_cef_inside_good_envelope(decoder: SyslogDecoder) -> None:
    e = decode(decoder, "<134>Jan  5 10:00:00 fw-01 CEF:0|V|P|truncated")
    assert e.event_type == "syslog"
    assert e.metadata["format"] == "rfc3164"
    assert e.metadata["parse_error"].startswith("cef: CEF header has 4 of 7 fields")
    assert e.host == "fw-01"
    assert e.severity is Severity.INFO
    assert e.description == "CEF:0|V|P|truncated"


def test_broken_bare_cef_is_unparsed(decoder: SyslogDecoder) -> None:
    e = decode(decoder, "CEF:0|only|three")
    assert e.metadata["format"] == "unparsed"
    assert e.event_type == "syslog"
    assert e.description == "CEF:0|only|three"
    assert "3 of 7" in e.metadata["parse_error"]


def test_leef_2_in_syslog(decoder: SyslogDecoder) -> None:
    e = decode(
        decoder,
        "<13>Jan 18 11:07:53 192.168.1.1 LEEF:2.0|Lancope|StealthWatch|1.0|41|^|src=10.0.1.8^dst=10.0.0.5^"
        "sev=8^devTime=Jan 18 2024 11:07:50^devTimeFormat=MMM dd yyyy HH:mm:ss",
    )
    assert e.event_type == "leef"
    assert e.severity is Severity.HIGH
    assert e.host == "192.168.1.1"
    assert e.title == "Lancope StealthWatch: 41"
    assert e.service == "StealthWatch"
    assert e.occurred_at == datetime(2024, 1, 18, 11, 7, 50, tzinfo=UTC)
    assert e.metadata["format"] == "leef"
    assert e.metadata["envelope"] == "rfc3164"
    assert e.metadata["leef"]["attributes"]["src"] == "10.0.1.8"
    assert e.metadata["leef"]["delimiter"] == "^"


def test_leef_1_bare_without_sev_and_bad_devtime(decoder: SyslogDecoder) -> None:
    e = decode(decoder, "LEEF:1.0|Microsoft|MSExchange|4.0 SP1|15345|src=192.0.2.0\tdevTime=later")
    assert e.severity is Severity.LOW
    assert e.occurred_at == RECEIVED
    assert "devTime" in e.metadata["timestamp_error"]
    assert e.metadata["envelope"] == "none"


def test_unparsed_keeps_raw_and_pri(decoder: SyslogDecoder) -> None:
    e = decode(decoder, '<11>1 - host app - - [unterminated x="1"')
    assert e.event_type == "syslog"
    assert e.metadata["format"] == "unparsed"
    assert e.metadata["parse_error"] == "unterminated structured data element"
    assert e.description == '<11>1 - host app - - [unterminated x="1"'
    assert e.raw == e.description
    assert e.severity is Severity.HIGH
    assert e.host == "10.0.0.5"
    assert e.occurred_at == RECEIVED
    assert set(e.metadata) == {"peer", "transport", "format", "facility", "syslog_severity", "parse_error"}


def test_rules_run_on_unparsed_messages(decoder: SyslogDecoder) -> None:
    e = decode(decoder, "<11>1 Out of disk space")
    assert e.metadata["format"] == "unparsed"
    assert e.event_type == "disk_space_critical"


@pytest.mark.parametrize("data", [b"", b"\n", b"\r\n", b"\x00", b"   "])
def test_empty_messages(decoder: SyslogDecoder, data: bytes) -> None:
    e = decode(decoder, data)
    assert e.metadata["parse_error"] == "empty message"
    assert e.title == "syslog message"


def test_invalid_utf8_and_nul(decoder: SyslogDecoder) -> None:
    e = decode(decoder, b"<13>Jan  5 11:22:33 host app: caf\xe9 \x00 end\x00\x00\n")
    assert e.description == "caf\ufffd \ufffd end"
    assert e.raw == "<13>Jan  5 11:22:33 host app: caf\ufffd \ufffd end\ufffd\ufffd\n"
    assert e.metadata["format"] == "rfc3164"


def test_title_first_line_and_truncation(decoder: SyslogDecoder) -> None:
    e = decode(decoder, "<13>Jan  5 11:22:33 host app: first line\nsecond line")
    assert e.title == "first line"
    assert e.description == "first line\nsecond line"
    long = decode(decoder, "<13>Jan  5 11:22:33 host app: " + "y" * 1000)
    assert long.title == "y" * 200


def test_received_at_is_converted_to_utc(decoder: SyslogDecoder) -> None:
    local = datetime(2024, 1, 5, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    e = decoder.decode(b"hello", PEER, local, "udp")
    assert e.received_at == RECEIVED
    assert e.received_at.tzinfo is UTC


def test_custom_source() -> None:
    e = SyslogDecoder([], source="syslog-edge").decode(b"<13>hi", PEER, RECEIVED, "udp")
    assert e.source == "syslog-edge"
    assert e.source_type == "syslog"


def test_invalid_rule_refused_at_construction() -> None:
    with pytest.raises(ConfigError, match=r"syslog.parsing_rules\[0\].pattern: invalid regex"):
        SyslogDecoder([ParsingRuleConfig(pattern="[", event_type="x", severity="low")])


@pytest.mark.parametrize(
    ("peer", "host"),
    [
        ("10.0.0.5:514", "10.0.0.5"),
        ("[::1]:514", "::1"),
        ("::1", "::1"),
        ("host.example", "host.example"),
        ("", None),
        (None, None),
        (":514", None),
    ],
)
def test_peer_host(peer: str | None, host: str | None) -> None:
    assert peer_host(peer) == host


@pytest.mark.parametrize(
    ("text", "fallback", "title"),
    [
        ("", None, "syslog message"),
        ("  ", "app", "app"),
        ("\n\n  third  \nfourth", None, "third"),
        ("a\r\nb", None, "a"),
    ],
)
def test_title_from(text: str, fallback: str | None, title: str) -> None:
    assert title_from(text, fallback) == title


# --- properties -------------------------------------------------------------------------------------------

_FRAGMENTS = st.sampled_from(
    [
        b"<13>",
        b"<165>1 ",
        b"<189>123: *Mar  1 00:00:00.000: ",
        b"2024-01-01T00:00:00Z ",
        b"Jan  5 11:22:33 ",
        b"host ",
        b"app[1]: ",
        b"- ",
        b'[a b="c\\"]"] ',
        b"CEF:0|",
        b"LEEF:2.0|",
        b"|",
        b"\\|",
        b"x09|",
        b"a=b ",
        b"sev=9\t",
        b"rt=1704453753000 ",
        b"devTime=Jan 18 2024 11:07:50^",
        b"%LINK-3-UPDOWN: ",
        b"Failed password for x from 1.2.3.4 port 1",
        b"\xff\xfe",
        b"\x00",
        b"\n",
        b"\xef\xbb\xbf",
    ]
)
_syslogish = st.lists(_FRAGMENTS, max_size=12).map(b"".join)


def _check_event(e: Event) -> None:
    assert isinstance(e.severity, Severity)
    assert e.title
    assert len(e.title) <= 200
    assert is_event_type(e.event_type)
    assert e.occurred_at.tzinfo is not None
    assert e.occurred_at.utcoffset() == timedelta(0)
    assert e.metadata["format"] in ("rfc5424", "rfc3164", "cef", "leef", "unparsed")
    # Storable: JSON-encodable metadata, and no NUL in any string (PostgreSQL text and jsonb refuse it).
    # Checked on the decoded strings: a sender's literal "\\u0000" is six harmless characters.
    assert not _has_nul(msgspec.json.decode(msgspec.json.encode(e)))


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


@settings(deadline=None)
@given(
    data=st.one_of(st.binary(max_size=300), _syslogish), peer=st.none() | st.sampled_from([PEER, "[::1]:1"])
)
def test_arbitrary_bytes_always_yield_a_valid_event(
    decoder: SyslogDecoder, data: bytes, peer: str | None
) -> None:
    e = decoder.decode(data, peer, RECEIVED, "udp")
    _check_event(e)
    assert e.raw == data.decode("utf-8", "replace").replace("\x00", "\ufffd")


@settings(deadline=None)
@given(text=st.text(max_size=300))
def test_arbitrary_text_always_yields_a_valid_event(decoder: SyslogDecoder, text: str) -> None:
    _check_event(decoder.decode(text.encode("utf-8", "surrogatepass"), PEER, RECEIVED, "tcp"))


_token = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20).filter(
    lambda s: s != "-"
)


@settings(deadline=None)
@given(
    pri=st.integers(0, 191),
    hostname=_token,
    app_name=_token,
    message=st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=100).filter(
        lambda m: not m.startswith("\ufeff")  # a leading BOM is the RFC's UTF-8 marker, removed by design
    ),
)
def test_generated_rfc5424_decodes_to_its_fields(
    decoder: SyslogDecoder, pri: int, hostname: str, app_name: str, message: str
) -> None:
    data = f"<{pri}>1 2024-01-05T10:00:00.5+02:00 {hostname} {app_name} - - - {message}".encode()
    e = decoder.decode(data, PEER, RECEIVED, "udp")
    assert e.metadata["format"] in ("rfc5424", "cef", "leef")
    if e.metadata["format"] != "rfc5424":
        return  # the generated message happened to start with CEF:/LEEF:
    assert e.host == hostname
    assert e.service == app_name
    assert e.description == message
    assert e.occurred_at == datetime(2024, 1, 5, 8, 0, 0, 500000, tzinfo=UTC)
    assert (
        e.metadata["facility"]
        == (
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
        )[pri >> 3]
    )
    if e.metadata.get("parsing_rule") is None:
        assert e.severity is (
            Severity.CRITICAL
            if pri & 7 <= 2
            else (Severity.HIGH, Severity.MEDIUM, Severity.LOW, Severity.INFO, Severity.INFO)[(pri & 7) - 3]
        )


@settings(deadline=None)
@given(
    name=st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40).filter(str.strip),
    severity=st.integers(0, 10),
    extension=st.dictionaries(
        st.from_regex(r"[a-z][a-zA-Z0-9]{0,10}", fullmatch=True),
        # No NUL or surrogates (tested elsewhere: U+FFFD); a trailing space is the separator's.
        st.text(st.characters(categories=["L", "M", "N", "P", "S", "Z"]), max_size=30).filter(
            lambda v: not v.endswith(" ")
        ),
        max_size=6,
    ),
)
def test_generated_cef_decodes_to_its_fields(
    decoder: SyslogDecoder, name: str, severity: int, extension: dict[str, str]
) -> None:
    def esc(value: str) -> str:
        return value.replace("\\", "\\\\").replace("=", "\\=").replace("\n", "\\n").replace("\r", "\\r")

    header_name = name.replace("\\", "\\\\").replace("|", "\\|")
    ext = " ".join(f"{k}={esc(v)}" for k, v in extension.items())
    data = f"<13>Jan  5 10:00:00 fw CEF:0|V|P|1|sig|{header_name}|{severity}|{ext}".encode()
    e = decoder.decode(data, PEER, RECEIVED, "udp")
    assert e.metadata["format"] == "cef"
    assert e.metadata["cef"]["name"] == name
    assert e.metadata["cef"]["severity"] == str(severity)
    assert e.metadata["cef"]["extension"] == extension
    if e.metadata.get("parsing_rule") is None:
        assert e.title == title_from(name, "sig")
