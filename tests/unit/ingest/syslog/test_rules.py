"""Parsing rules: compile-time refusals, the spec's two example rules, match_on paths, title templates."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsresponder.config import ParsingRuleConfig
from opsresponder.core.errors import ConfigError
from opsresponder.core.event import Event
from opsresponder.core.severity import Severity
from opsresponder.ingest.syslog.rules import MAX_TITLE_LENGTH, compile_rules

SPEC_RULES = [
    ParsingRuleConfig(
        pattern="Failed password for .* from (.*) port",
        event_type="authentication_failure",
        severity="medium",
        extract_fields=["source_ip"],
    ),
    ParsingRuleConfig(pattern="Out of disk space", event_type="disk_space_critical", severity="critical"),
]
NOW = datetime(2024, 1, 5, tzinfo=UTC)


def rule(pattern: str = "x", **kwargs: Any) -> ParsingRuleConfig:
    kwargs.setdefault("event_type", "typed")
    kwargs.setdefault("severity", "high")
    return ParsingRuleConfig(pattern=pattern, **kwargs)


def event(description: str | None = "hello", **metadata: Any) -> Event:
    return Event(
        source="syslog",
        source_type="syslog",
        event_type="syslog",
        severity=Severity.LOW,
        title="original title",
        occurred_at=NOW,
        received_at=NOW,
        host="web-01",
        description=description,
        metadata=dict(metadata),
    )


def test_spec_rule_authentication_failure() -> None:
    rules = compile_rules(SPEC_RULES)
    e = event("Failed password for invalid user admin from 203.0.113.7 port 51234 ssh2", app_name="sshd")
    matched = rules.apply(e)
    assert matched is not None
    assert matched.index == 0
    assert e.event_type == "authentication_failure"
    assert e.severity is Severity.MEDIUM
    assert e.metadata["source_ip"] == "203.0.113.7"
    assert e.metadata["parsing_rule"] == {"index": 0, "pattern": "Failed password for .* from (.*) port"}
    assert e.title == "original title"


def test_spec_rule_disk_space() -> None:
    rules = compile_rules(SPEC_RULES)
    e = event("kernel: Out of disk space on /dev/sda1")
    rules.apply(e)
    assert e.event_type == "disk_space_critical"
    assert e.severity is Severity.CRITICAL
    assert e.metadata["parsing_rule"]["index"] == 1


def test_no_match_keeps_the_event() -> None:
    rules = compile_rules(SPEC_RULES)
    e = event("all good")
    assert rules.apply(e) is None
    assert (e.event_type, e.severity, e.metadata) == ("syslog", Severity.LOW, {})


def test_first_match_wins() -> None:
    rules = compile_rules([rule("disk", event_type="first"), rule("disk", event_type="second")])
    e = event("disk full")
    rules.apply(e)
    assert e.event_type == "first"


def test_search_not_match() -> None:
    rules = compile_rules([rule("full$")])
    e = event("disk is full")
    assert rules.apply(e) is not None


def test_named_groups_and_positional_names() -> None:
    rules = compile_rules(
        [rule(r"user (?P<user>\w+) from (\S+)( via (\w+))?", extract_fields=["who", "source_ip"])]
    )
    e = event("login user bob from 10.0.0.1")
    rules.apply(e)
    assert e.metadata["who"] == "bob"
    assert e.metadata["user"] == "bob"
    assert e.metadata["source_ip"] == "10.0.0.1"
    assert "via" not in e.metadata


def test_unmatched_optional_group_is_left_out() -> None:
    rules = compile_rules([rule(r"a(b)?(c)", extract_fields=["b", "c"])])
    e = event("ac")
    rules.apply(e)
    assert e.metadata["c"] == "c"
    assert "b" not in e.metadata


@pytest.mark.parametrize(
    ("match_on", "metadata", "matches"),
    [
        ("cef.name", {"cef": {"name": "Worm stopped"}}, True),
        ("metadata.cef.name", {"cef": {"name": "Worm stopped"}}, True),
        ("cef.name", {"cef": {"name": "other"}}, False),
        ("cef.name", {}, False),
        ("app_name", {"app_name": "Worm"}, True),
        (
            "structured_data.junos@2636.1.1.1.2.18.username",
            {"structured_data": {"junos@2636.1.1.1.2.18": {"username": "Worm"}}},
            True,
        ),
        ("cisco.severity", {"cisco": {"severity": 3}}, False),
        ("cef", {"cef": {"name": "Worm"}}, False),
    ],
)
def test_match_on_metadata_paths(match_on: str, metadata: dict[str, Any], matches: bool) -> None:
    rules = compile_rules([rule("Worm", match_on=match_on)])
    e = event("Worm in the message, but match_on says elsewhere", **metadata)
    assert (rules.apply(e) is not None) is matches


def test_match_on_number_matches_its_text() -> None:
    rules = compile_rules([rule("^3$", match_on="cisco.severity")])
    assert rules.apply(event(cisco={"severity": 3})) is not None


def test_match_on_event_fields() -> None:
    rules = compile_rules([rule("^web-", match_on="host"), rule("^orig", match_on="title", event_type="t2")])
    e = event()
    rules.apply(e)
    assert e.event_type == "typed"
    e2 = event()
    e2.host = "db-01"
    rules.apply(e2)
    assert e2.event_type == "t2"


def test_message_falls_back_to_raw_when_no_description() -> None:
    rules = compile_rules([rule("raw text")])
    e = event(None)
    e.raw = "the raw text"
    assert rules.apply(e) is not None


def test_title_template() -> None:
    rules = compile_rules(
        [
            rule(
                "Failed password for (\\S+) from (\\S+)",
                extract_fields=["user", "source_ip"],
                title="SSH login failed for {user} from {source_ip} on {host} ({app_name}) {missing}{{x}}",
            )
        ]
    )
    e = event("Failed password for root from 10.0.0.1 port 22", app_name="sshd")
    rules.apply(e)
    assert e.title == "SSH login failed for root from 10.0.0.1 on web-01 (sshd) {x}"


def test_title_template_rendering_empty_keeps_title() -> None:
    rules = compile_rules([rule("x", title="{missing}")])
    e = event("x")
    rules.apply(e)
    assert e.title == "original title"


def test_title_is_truncated() -> None:
    rules = compile_rules([rule("(x+)", extract_fields=["xs"], title="{xs}")])
    e = event("x" * 500)
    rules.apply(e)
    assert e.title == "x" * MAX_TITLE_LENGTH


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            rule("(unclosed"),
            r"syslog.parsing_rules\[1\].pattern: invalid regex: missing \), unterminated subpattern",
        ),
        (
            rule("x", event_type="Not An Identifier"),
            r"syslog.parsing_rules\[1\].event_type: 'Not An Identifier'",
        ),
        (rule("x", event_type=""), r"parsing_rules\[1\].event_type"),
        (rule("x", severity="urgent"), r"parsing_rules\[1\].severity: 'urgent'"),
        (rule("(a)", extract_fields=["one", "two"]), r"extract_fields: names 2 fields but the pattern has 1"),
        (rule("(a)", extract_fields=["not valid"]), r"extract_fields: 'not valid' is not an identifier"),
        (rule("(a)", extract_fields=["peer"]), r"extract_fields: 'peer' is a reserved metadata key"),
        (rule("(?P<format>a)"), r"extract_fields: 'format' is a reserved metadata key"),
        (rule("x", match_on=""), r"match_on"),
        (rule("x", match_on="cef..name"), r"match_on"),
        (rule("x", title="{a.b}"), r"title: placeholder \{a.b\} must be a plain name"),
        (rule("x", title="{a[0]}"), r"title: placeholder"),
        (rule("x", title="{}"), r"title: placeholder"),
        (rule("x", title="{0}"), r"title: placeholder"),
        (rule("x", title="{a!r}"), r"conversion or format spec"),
        (rule("x", title="{a:>10}"), r"conversion or format spec"),
        (rule("x", title="{a"), r"title: invalid template"),
        (rule("x", title="a}"), r"title: invalid template"),
    ],
)
def test_invalid_rules_are_refused_naming_the_rule(config: ParsingRuleConfig, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        compile_rules([rule("fine"), config])


def test_custom_key_path() -> None:
    with pytest.raises(ConfigError, match=r"^x.rules\[0\].pattern"):
        compile_rules([rule("(")], key_path="x.rules")


def test_empty_rules() -> None:
    rules = compile_rules([])
    assert len(rules) == 0
    assert rules.apply(event()) is None


@given(st.text(max_size=200), st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3))
def test_apply_never_raises(message: str, metadata: dict[str, str]) -> None:
    rules = compile_rules(
        [
            rule("(?P<word>\\w+)", match_on="a.b", title="{word} {host} {b}"),
            *SPEC_RULES,
            rule("(.)(.)?", extract_fields=["one", "two"], title="{one}{two}{nothing}"),
        ]
    )
    e = event(message, **metadata)
    rules.apply(e)
    assert e.title
