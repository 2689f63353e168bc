"""Plans: which chosen actions are refused and why (the API's 422), topological levels, the hash an
approval is bound to, and which plans take the per-target lock."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from opsresponder.core.clock import utcnow
from opsresponder.response.executor.plan import (
    PlanError,
    build_plan,
    needs_target_lock,
    plan_hash,
    substitute,
)
from opsresponder.rules.templates import ResponseTemplate, Script, ScriptCatalog
from opsresponder.rules.templates.model import RollbackAction, TemplateAction
from opsresponder.rules.templates.scripts import ScriptParameter
from opsresponder.store.decisions import DecisionAction, StoredDecision

CATALOG = ScriptCatalog(
    [
        Script(
            id=1,
            name="check",
            risk_level="low",
            command=["/bin/true"],
            parameters=[ScriptParameter(name="limit", type="integer")],
        ),
        Script(
            id=2,
            name="fix",
            risk_level="medium",
            action_type="service_restart",
            command=["/bin/true"],
            parameters=[ScriptParameter(name="service", type="string", required=True)],
            rollback="unfix",
        ),
        Script(id=3, name="unfix", risk_level="medium", command=["/bin/true"]),
    ]
)


def act(action_id: int, key: str, *, script: str | None = "check", **fields: Any) -> DecisionAction:
    values: dict[str, Any] = {
        "action_id": action_id,
        "key": key,
        "name": key.title(),
        "action_type": "diagnostic",
        "script": script,
        "timeout_seconds": 30.0,
        "risk_level": "low",
        "risk_score": 0.1,
        "approval_required": False,
        "estimated_duration_minutes": 1.0,
        "success_probability": 0.8,
    }
    values.update(fields)
    return DecisionAction(**values)


def decision(*actions: DecisionAction, **fields: Any) -> StoredDecision:
    return StoredDecision(
        decision_id=9,
        event_id=90,
        created_at=utcnow(),
        requested_by="t",
        recommended_actions=list(actions),
        **fields,
    )


DIAMOND = decision(
    act(1, "a"),
    act(2, "b", depends_on=["a"]),
    act(3, "c", depends_on=["a"]),
    act(4, "d", depends_on=["b", "c"]),
)


def test_all_actions_in_levels() -> None:
    plan = build_plan(DIAMOND, None, CATALOG, None)
    assert [a.key for a in plan.actions] == ["a", "b", "c", "d"]
    assert plan.levels == [["a"], ["b", "c"], ["d"]]


def test_chosen_subset_keeps_the_decision_order() -> None:
    plan = build_plan(DIAMOND, [3, 1], CATALOG, None)
    assert [a.key for a in plan.actions] == ["a", "c"]
    assert plan.levels == [["a"], ["c"]]


@pytest.mark.parametrize(
    ("ids", "field", "reason"),
    [
        ([1, 77], "action_ids[1]", "decision 9 has no action 77"),
        ([1, 1], "action_ids[1]", "action 1 is chosen twice"),
        ([1, 4], "action_ids[1]", "action 'd' depends on 'b', which is not chosen; choose it too"),
        ([], "action_ids", "decision 9 has no action to run"),
    ],
)
def test_refused_choices_name_the_field(ids: list[int], field: str, reason: str) -> None:
    with pytest.raises(PlanError) as refused:
        build_plan(DIAMOND, ids, CATALOG, None)
    assert (refused.value.field, refused.value.reason) == (field, reason)


def test_unknown_script_and_bad_parameters_are_refused() -> None:
    with pytest.raises(PlanError, match="script 'nope' of action 'x' is not in the catalog"):
        build_plan(decision(act(1, "x", script="nope")), None, CATALOG, None)
    with pytest.raises(PlanError) as refused:
        build_plan(decision(act(1, "x", parameters={"limit": "ten"})), [1], CATALOG, None)
    assert refused.value.field == "action_ids[0]"
    assert "'limit' must be an integer, not string" in refused.value.reason
    with pytest.raises(PlanError, match="'service' is required"):
        build_plan(decision(act(1, "x", script="fix")), None, CATALOG, None)
    with pytest.raises(PlanError, match="names no message template"):
        build_plan(decision(act(1, "n", script=None, action_type="notification")), None, CATALOG, None)


def test_a_cycle_is_refused() -> None:
    cyclic = decision(
        act(1, "a", depends_on=["c"]),
        act(2, "b", depends_on=["a"]),
        act(3, "c", depends_on=["b"]),
        act(4, "e"),
    )
    with pytest.raises(PlanError, match="the dependencies of a, b, c form a cycle"):
        build_plan(cyclic, None, CATALOG, None)


def test_rollback_plan_and_template_parts_are_copied_in() -> None:
    template = ResponseTemplate(
        id="t",
        name="T",
        version="2",
        actions=[TemplateAction(id="a", name="A", type="diagnostic", automation_script="check")],
        rollback_actions=[
            RollbackAction(
                id="r",
                name="R",
                automation_script_id=2,
                parameters={"service": "{{ svc }}", "note": "for {{ svc }} at {{ unknown }}"},
                condition="a.failed",
                timeout_minutes=1,
            )
        ],
        success_criteria=["a.succeeded"],
        max_execution_time_minutes=15,
    )
    plan = build_plan(
        decision(
            act(1, "a"),
            act(2, "f", script="fix", parameters={"service": "nginx"}, rollback_script="unfix"),
            variables={"svc": "nginx"},
        ),
        None,
        CATALOG,
        template,
    )
    assert plan.rollback_scripts == {"f": "unfix"}
    [step] = plan.rollback_actions
    assert step.script == "fix" and step.timeout_seconds == 60.0
    assert step.parameters == {"service": "nginx", "note": "for nginx at {{ unknown }}"}
    assert plan.success_criteria == ["a.succeeded"] and plan.max_execution_time_minutes == 15
    assert plan.template_actions == ["a"]


def test_plan_hash_is_canonical_and_changes_with_the_plan() -> None:
    plan = build_plan(DIAMOND, None, CATALOG, None)
    again = msgspec.convert(msgspec.to_builtins(plan), type(plan))
    assert plan_hash(plan) == plan_hash(again)
    assert len(plan_hash(plan)) == 64
    assert plan_hash(build_plan(DIAMOND, [1, 2], CATALOG, None)) != plan_hash(plan)


def test_only_plans_that_change_the_target_take_its_lock() -> None:
    assert not needs_target_lock(build_plan(DIAMOND, None, CATALOG, None), CATALOG)
    restart = decision(act(1, "f", script="fix", parameters={"service": "x"}))
    assert needs_target_lock(build_plan(restart, None, CATALOG, None), CATALOG)
    labelled = decision(act(1, "c", action_type="remediation"))
    assert needs_target_lock(build_plan(labelled, None, CATALOG, None), CATALOG)
    note = decision(act(1, "n", script=None, action_type="notification", message_template="m"))
    assert not needs_target_lock(build_plan(note, None, CATALOG, None), CATALOG)


def test_substitute_keeps_types_of_whole_placeholders() -> None:
    values = {"n": 3, "hosts": ["a", "b"]}
    assert substitute({"x": "{{ n }}", "y": ["{{hosts}}", "n={{ n }}"], "z": 1}, values) == {
        "x": 3,
        "y": [["a", "b"], "n=3"],
        "z": 1,
    }
