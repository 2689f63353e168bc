"""The trigger rule shape: what compile_rule refuses (naming the field), and the JSON it stores."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from opsresponder.rules.triggers import RuleError, TriggerRuleBody, compile_rule, referenced_paths

SPEC_RULE: dict[str, Any] = {
    "name": "High CPU Alert Rule",
    "description": "Trigger when CPU usage exceeds 90%",
    "conditions": {
        "event_type": "threshold_breach",
        "severity": ["critical", "high"],
        "metadata.cpu_usage": {"$gt": 90},
        "host": {"$regex": "web-server-.*"},
    },
    "time_window_minutes": 5,
    "max_triggers_per_hour": 3,
    "cooldown_minutes": 15,
    "active": True,
}


def body(**changes: Any) -> TriggerRuleBody:
    return msgspec.convert({**SPEC_RULE, **changes}, TriggerRuleBody)


def test_the_spec_example_compiles_and_stores_every_field() -> None:
    rule = compile_rule(body())
    assert rule.after is None and rule.group_by == ()
    assert rule.body.to_json() == {
        **SPEC_RULE,
        "threshold": 1,
        "group_by": [],
        "absence": None,
    }


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"conditions": {"host": {"$gtt": 1}}}, "conditions.host.$gtt", "unknown operator $gtt"),
        ({"conditions": {"host": {"$regex": "(web"}}}, "conditions.host.$regex",
         "invalid regular expression: missing ): (web"),
        ({"conditions": {"metadata.cpu": {"$gt": "high"}}}, "conditions.metadata.cpu.$gt",
         "$gt needs a number, not text"),
        ({"conditions": {"host": {"$gt": 5}}}, "conditions.host.$gt", "needs a number field"),
        ({"group_by": ["hostname"]}, "group_by[0]", "unknown field 'hostname'"),
        ({"group_by": ["host", "tags"]}, "group_by[1]", "cannot group events"),
        ({"group_by": ["host", "host"]}, "group_by[1]", "listed twice"),
        ({"group_by": ["metadata..x"]}, "group_by[0]", "unknown field"),
        ({"threshold": 3, "time_window_minutes": None}, "threshold", "set it"),
        ({"threshold": 2, "absence": {"within_minutes": 5}}, "threshold", "must be 1"),
        ({"absence": {"within_minutes": 5, "after": {"host": {"$in": "x"}}}}, "absence.after.host.$in",
         "$in needs a list"),
        ({"absence": {"within_minutes": 5, "after": {}}}, "absence.after", "empty object"),
        ({"absence": {"within_minutes": 5, "expected_groups": ["a"]}}, "absence.expected_groups",
         "need group_by"),
        ({"group_by": ["host", "service"], "absence": {"within_minutes": 5, "expected_groups": ["a"]}},
         "absence.expected_groups", "exactly one group_by"),
    ],
)  # fmt: skip
def test_refusals_name_the_field(changes: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(RuleError) as caught:
        compile_rule(body(**changes))
    assert caught.value.field == field
    assert reason in caught.value.reason, caught.value.reason


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        ({"cooldown_minutes": -1}, "cooldown_minutes"),
        ({"threshold": 0}, "threshold"),
        ({"absence": {"within_minutes": 0}}, "absence.within_minutes"),
        ({"max_triggers_per_hour": 0}, "max_triggers_per_hour"),
        ({"time_window_minutes": 0}, "time_window_minutes"),
        ({"name": ""}, "name"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_types_and_ranges_are_refused_by_the_decoder(changes: dict[str, Any], where: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=where.split(".")[-1]):
        body(**changes)


def test_referenced_paths_are_the_optional_ones_read_by_conditions_after_and_group_by() -> None:
    rule = compile_rule(
        body(
            conditions={"$or": [{"metadata.a.b": 1}, {"$not": {"host": "x"}}], "event_type": "t"},
            group_by=["service", "metadata.region"],
            absence={"within_minutes": 5, "after": {"metadata.restart": True}},
        )
    )
    assert referenced_paths(rule) == [
        "metadata.a.b",
        "host",
        "metadata.restart",
        "service",
        "metadata.region",
    ]
