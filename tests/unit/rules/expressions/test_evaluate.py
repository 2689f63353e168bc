"""The expression language evaluated operator by operator, with missing names and type mismatches."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from opsresponder.core.event import Event
from opsresponder.core.severity import Severity
from opsresponder.rules.expressions import EVENT_SCOPE, Expression, Outcome, event_activation, execution_scope

SCOPE = execution_scope(["check", "fix"])


def run(text: str, activation: dict[str, Any], values: dict[str, Any] | None = None) -> Outcome:
    variables = frozenset(values or ())
    return Expression.parse(text, SCOPE, variables).bind(values).evaluate(activation)


CHECK = {"check": {"status": "succeeded", "failed": False, "result": {"cpu": 85, "load": 2.5, "name": "web"}}}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("check.result.cpu == 85", True),
        ("check.result.cpu == 85.0", True),
        ("check.result.cpu != 85", False),
        ("check.result.cpu < 90", True),
        ("check.result.cpu < 85", False),
        ("check.result.cpu <= 85", True),
        ("check.result.cpu > 84.5", True),
        ("check.result.cpu >= 86", False),
        ("check.result.load > 2", True),
        ("check.result.load < -1", False),
        ("check.result.name == 'web'", True),
        ('check.result.name == "web"', True),
        ("check.result.name < 'zzz'", True),
        ("check.status in ['succeeded', 'skipped']", True),
        ("check.status in []", False),
        ("check.status not in ['failed']", True),
        ("not check.status in ['succeeded']", False),
        ("check.failed", False),
        ("!check.failed", True),
        ("check.failed == false && check.result.cpu > 80", True),
        ("check.failed and check.result.cpu > 80", False),
        ("check.failed || check.result.cpu > 80", True),
        ("check.failed or check.result.cpu > 90", False),
        ("(check.failed || true) && !(check.result.cpu == 1)", True),
        ("check.result.missing == null", False),  # missing is not null: it is missing (see below)
        ("true", True),
        ("null == null", True),
    ],
)
def test_operators(text: str, expected: bool) -> None:
    outcome = run(text, CHECK)
    assert outcome.value is expected, outcome


def test_a_missing_root_is_false_with_its_name() -> None:
    outcome = run("fix.failed", CHECK)
    assert outcome == Outcome(False, "fix is missing")


def test_a_missing_key_is_false_with_its_path() -> None:
    outcome = run("check.result.disk > 1", CHECK)
    assert not outcome.value
    assert outcome.reason == "check.result.disk is missing (no 'disk' in check.result)"


def test_a_path_through_a_value_is_missing() -> None:
    outcome = run("check.result.cpu.max > 1", CHECK)
    assert not outcome.value
    assert outcome.reason is not None
    assert "check.result.cpu is 85 (int), which has no fields" in outcome.reason


def test_the_negation_of_a_missing_name_is_false_too() -> None:
    # Could not be evaluated: not "true because it is not there" (StackStorm's rule: no match, with why).
    outcome = run("!(check.result.disk > 1)", CHECK)
    assert outcome.value is False
    assert outcome.reason is not None


@pytest.mark.parametrize(
    "text",
    ["check.result.name > 1", "check.result.cpu < 'x'", "check.result.cpu in 'abc'", "check.status && true"],
)
def test_a_type_mismatch_is_false_with_the_reason(text: str) -> None:
    outcome = run(text, CHECK)
    assert not outcome.value
    assert outcome.reason is not None
    assert outcome.reason.startswith("type mismatch"), outcome.reason


def test_equality_across_types_is_simply_false() -> None:
    assert run("check.result.name == 1", CHECK) == Outcome(False)


def test_a_result_that_is_not_a_boolean_is_false() -> None:
    outcome = run("check.result.cpu", CHECK)
    assert outcome == Outcome(False, "evaluated to 85 (int), not a boolean")


def test_short_circuit_needs_no_missing_name() -> None:
    assert run("false && fix.failed", CHECK) == Outcome(False)
    assert run("fix.failed || true", CHECK) == Outcome(True)


def test_a_value_cel_cannot_take_is_false_with_the_reason() -> None:
    outcome = run("check.result.cpu == 1", {"check": {"result": {"cpu": object()}}})
    assert not outcome.value
    assert outcome.reason is not None
    assert outcome.reason.startswith("cannot evaluate")


@pytest.mark.parametrize(
    ("values", "activation", "expected"),
    [
        ({"limit": 90.0}, {"check": {"result": {"cpu": 85}}}, True),
        ({"limit": 80}, {"check": {"result": {"cpu": 85}}}, False),
        ({"limit": "85"}, {"check": {"result": {"cpu": 85}}}, False),  # a string: a type mismatch
        ({"limit": True}, {"check": {"result": {"cpu": 85}}}, False),
    ],
)
def test_placeholders_become_typed_literals(
    values: dict[str, Any], activation: dict[str, Any], expected: bool
) -> None:
    assert run("check.result.cpu < {{ limit }}", activation, values).value is expected


def test_a_placeholder_value_cannot_inject_operators() -> None:
    hostile = "x' || true || 'y"
    program = Expression.parse("check.result.name == {{ name }}", SCOPE, frozenset({"name"})).bind(
        {"name": hostile}
    )
    assert program.evaluate({"check": {"result": {"name": "web"}}}) == Outcome(False)
    assert program.evaluate({"check": {"result": {"name": hostile}}}) == Outcome(True)
    assert "||" not in program.source


def test_a_list_variable_in_a_membership_test() -> None:
    text = "event.host in {{ hosts }}"
    values = {"hosts": ["web-1", "web-2"]}
    assert run(text, {"event": {"host": "web-2"}}, values).value
    assert not run(text, {"event": {"host": "db-1"}}, values).value


def test_the_spec_trigger_conditions_on_an_event() -> None:
    event = {"metadata": {"cpu_usage": 95.5}, "severity": "high"}
    for text in ("metadata.cpu_usage > 90", "severity in ['critical', 'high']"):
        assert Expression.parse(text, EVENT_SCOPE).bind().evaluate(event) == Outcome(True)


def test_trigger_conditions_read_a_real_event() -> None:
    now = datetime.now(UTC)
    event = Event(
        source="prometheus",
        source_type="webhook",
        event_type="threshold_breach",
        severity=Severity.HIGH,
        title="CPU high on web-1",
        occurred_at=now,
        received_at=now,
        host="web-1",
        metadata={"cpu_usage": 95.5},
        tags=["web"],
    )
    activation = event_activation(event)

    def check(text: str) -> Outcome:
        return Expression.parse(text, EVENT_SCOPE).bind().evaluate(activation)

    assert check("metadata.cpu_usage > 90 && severity in ['critical', 'high']") == Outcome(True)
    assert check("state == 'problem' && 'web' in tags && host == 'web-1'") == Outcome(True)
    assert check("service == 'nginx'") == Outcome(False, "service is missing")
    assert check("score > 1") == Outcome(False, "score is missing")
