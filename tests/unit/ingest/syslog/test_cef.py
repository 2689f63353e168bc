"""CEF parser: ArcSight's examples, hostile escaping vectors, and round-trip properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsresponder.ingest.syslog.cef import parse_cef, parse_extension


def test_arcsight_basic_example() -> None:
    msg = parse_cef(
        "CEF:0|Security|threatmanager|1.0|100|worm successfully stopped|10|src=10.0.0.1 dst=2.1.2.2 spt=1232"
    )
    assert msg.version == 0
    assert (msg.device_vendor, msg.device_product, msg.device_version) == ("Security", "threatmanager", "1.0")
    assert (msg.signature_id, msg.name, msg.severity) == ("100", "worm successfully stopped", "10")
    assert msg.extension == {"src": "10.0.0.1", "dst": "2.1.2.2", "spt": "1232"}


# The escaping examples of "Implementing ArcSight CEF" (rev. 25), without their syslog header.
def test_spec_escaped_pipe_in_header_unescaped_pipe_in_extension() -> None:
    msg = parse_cef(
        r"CEF:0|security|threatmanager|1.0|100|detected a \| in message|10|"
        r"src=10.0.0.1 act=blocked a | dst=1.1.1.1"
    )
    assert msg.name == "detected a | in message"
    assert msg.extension == {"src": "10.0.0.1", "act": "blocked a |", "dst": "1.1.1.1"}


def test_spec_escaped_backslash() -> None:
    msg = parse_cef(
        r"CEF:0|security|threatmanager|1.0|100|detected a \\ in packet|10|"
        r"src=10.0.0.1 act=blocked a \\ dst=1.1.1.1"
    )
    assert msg.name == "detected a \\ in packet"
    assert msg.extension["act"] == "blocked a \\"
    assert msg.extension["dst"] == "1.1.1.1"


def test_spec_escaped_equals() -> None:
    msg = parse_cef(
        r"CEF:0|security|threatmanager|1.0|100|detected a = in message|10|"
        r"src=10.0.0.1 act=blocked a \= dst=1.1.1.1"
    )
    assert msg.name == "detected a = in message"
    assert msg.extension == {"src": "10.0.0.1", "act": "blocked a =", "dst": "1.1.1.1"}


def test_spec_multi_line_value() -> None:
    msg = parse_cef(
        r"CEF:0|security|threatmanager|1.0|100|Detected a threat. No action needed.|10|src=10.0.0.1 "
        r"msg=Detected a threat.\n No action needed."
    )
    assert msg.extension["msg"] == "Detected a threat.\n No action needed."


def test_hostile_pipes_in_every_header_field() -> None:
    msg = parse_cef(r"CEF:0|Ven\|dor|Pro\|duct|1\|2|sig\|1|na\|me|5|a=b")
    assert (msg.device_vendor, msg.device_product, msg.device_version) == ("Ven|dor", "Pro|duct", "1|2")
    assert (msg.signature_id, msg.name, msg.severity) == ("sig|1", "na|me", "5")
    assert msg.extension == {"a": "b"}


def test_hostile_backslash_before_pipe_ends_the_field() -> None:
    # "\\|" is an escaped backslash followed by a real separator, not an escaped pipe.
    msg = parse_cef(r"CEF:0|Vendor\\|Product|1|100|name|5|a=b")
    assert msg.device_vendor == "Vendor\\"
    assert msg.device_product == "Product"
    assert msg.extension == {"a": "b"}


def test_hostile_escaped_key_lookalike_stays_in_the_value() -> None:
    msg = parse_cef(r"CEF:0|V|P|1|100|n|5|msg=user said suser\=root and act\=allowed suser=alice")
    assert msg.extension == {"msg": "user said suser=root and act=allowed", "suser": "alice"}


def test_hostile_injected_newline_escapes_become_newlines_in_one_value() -> None:
    msg = parse_cef(
        r"CEF:0|V|P|1|100|n|5|msg=line1\nCEF:0|Evil|Injected|1|1|fake|10|\r\n src=1.2.3.4 dst=5.6.7.8"
    )
    assert msg.device_vendor == "V"
    assert msg.extension["msg"] == "line1\nCEF:0|Evil|Injected|1|1|fake|10|\r\n"
    assert msg.extension["src"] == "1.2.3.4"
    # Glued to an escape, a key-looking text is not a key: keys only start after a space.
    glued = parse_cef(r"CEF:0|V|P|1|100|n|5|msg=a\nsrc=1.2.3.4")
    assert glued.extension == {"msg": "a\nsrc=1.2.3.4"}


def test_hostile_raw_newline_inside_value_is_kept() -> None:
    msg = parse_cef("CEF:0|V|P|1|100|n|5|msg=one\ntwo=2 three=3")
    assert msg.extension == {"msg": "one\ntwo=2", "three": "3"}


def test_unescaped_key_lookalike_is_a_key_as_the_format_says() -> None:
    msg = parse_cef("CEF:0|V|P|1|100|n|5|msg=hello suser=root")
    assert msg.extension == {"msg": "hello", "suser": "root"}


def test_unescaped_equals_not_after_a_space_stays_in_value() -> None:
    msg = parse_cef("CEF:0|V|P|1|100|n|5|request=https://x.example/?a=1&b=2 act=ok")
    assert msg.extension == {"request": "https://x.example/?a=1&b=2", "act": "ok"}


def test_unknown_backslash_sequences_are_kept() -> None:
    msg = parse_cef(r"CEF:0|V\x|P|1|100|n|5|path=C:\Windows\temp fname=\q")
    assert msg.device_vendor == "V\\x"
    assert msg.extension == {"path": "C:\\Windows\\temp", "fname": "\\q"}


def test_values_with_spaces_and_empty_values() -> None:
    msg = parse_cef("CEF:0|V|P|1|100|n|5|msg=a b  c cs1= cs1Label=x y")
    assert msg.extension == {"msg": "a b  c", "cs1": "", "cs1Label": "x y"}


def test_text_before_the_first_key_is_ignored_and_last_duplicate_wins() -> None:
    assert parse_extension("garbage here a=1 a=2") == {"a": "2"}


def test_extension_keys_with_dots_brackets_and_dashes() -> None:
    assert parse_extension("ad.user=bob cs1[0]=x x-y=z") == {"ad.user": "bob", "cs1[0]": "x", "x-y": "z"}


def test_no_extension_and_no_trailing_pipe() -> None:
    assert parse_cef("CEF:0|V|P|1|100|n|5|").extension == {}
    msg = parse_cef("CEF:0|V|P|1|100|n|Low")
    assert msg.severity == "Low"
    assert msg.extension == {}


def test_cef_version_1_and_padded_severity() -> None:
    msg = parse_cef("CEF:1|V|P|1|100|n| Very-High |a=b")
    assert msg.version == 1
    assert msg.severity == "Very-High"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("LEEF:1.0|a|b|c|d|", "not CEF"),
        ("CEF:0|V|P|1|100|n", "6 of 7"),
        ("CEF:|V|P|1|100|n|5|", "version"),
        ("CEF:x|V|P|1|100|n|5|", "version"),
        (r"CEF:0|V|P|1|100|n\|5", "6 of 7"),
    ],
)
def test_malformed(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_cef(text)


# --- properties -------------------------------------------------------------------------------------------


def _escape_header(value: str) -> str:
    return value.replace("\\", "\\\\").replace("|", "\\|")


def _escape_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("=", "\\=").replace("\n", "\\n").replace("\r", "\\r")


_header_field = st.text(max_size=30)
_keys = st.from_regex(r"[A-Za-z][A-Za-z0-9_.]{0,15}", fullmatch=True)
# A value may not end with a space: the space before the next key is the separator, so trailing spaces
# are not distinguishable from it (in the format itself, not just here).
_values = st.text(max_size=40).filter(lambda v: not v.endswith(" "))


@given(
    version=st.integers(0, 1),
    fields=st.tuples(_header_field, _header_field, _header_field, _header_field, _header_field),
    severity=st.sampled_from(["0", "5", "10", "Low", "Medium", "High", "Very-High"]),
    extension=st.dictionaries(_keys, _values, max_size=8),
)
def test_generated_events_round_trip(
    version: int, fields: tuple[str, str, str, str, str], severity: str, extension: dict[str, str]
) -> None:
    header = "|".join(_escape_header(field) for field in fields)
    ext = " ".join(f"{key}={_escape_value(value)}" for key, value in extension.items())
    msg = parse_cef(f"CEF:{version}|{header}|{severity}|{ext}")
    assert msg.version == version
    assert (msg.device_vendor, msg.device_product, msg.device_version, msg.signature_id, msg.name) == fields
    assert msg.severity == severity
    assert msg.extension == extension


_cef_shaped = st.lists(
    st.sampled_from(["CEF:0|", "|", "\\", "\\|", "\\=", "=", " ", "a", "key=", " k=", "\n", "\\n", "1"]),
    max_size=30,
).map("".join)


@given(st.one_of(_cef_shaped, st.text(max_size=200).map(lambda t: "CEF:" + t), st.text(max_size=100)))
def test_arbitrary_input_parses_or_raises_value_error(text: str) -> None:
    try:
        msg = parse_cef(text)
    except ValueError:
        return
    assert all(key and " " not in key for key in msg.extension)
