"""How the rule-to-response loop splits a decision's actions: what runs without a person, and what waits
for approval with the dependencies it needs."""

from __future__ import annotations

from opsresponder.response.loop import split
from opsresponder.store.decisions import DecisionAction


def action(key: str, *depends_on: str, approval: bool = False) -> DecisionAction:
    return DecisionAction(
        action_id=len(key), key=key, name=key, action_type="diagnostic", depends_on=list(depends_on),
        approval_required=approval, timeout_seconds=10, risk_level="low", risk_score=0.1,
        estimated_duration_minutes=1, success_probability=0.8,
    )  # fmt: skip


def keys(actions: list[DecisionAction]) -> list[str]:
    return [a.key for a in actions]


def test_approval_free_actions_run_and_the_rest_waits_with_its_dependencies() -> None:
    plan = [
        action("look"),
        action("fix", "look", approval=True),
        action("verify", "fix"),  # approval-free, but depends on one that is not
        action("report"),
    ]
    automatic, approval = split(plan)
    assert keys(automatic) == ["look", "report"]
    assert keys(approval) == ["look", "fix", "verify"]


def test_all_free_or_all_gated() -> None:
    assert [keys(p) for p in split([action("a"), action("b", "a")])] == [["a", "b"], []]
    gated = [action("a", approval=True), action("b", "a")]
    assert [keys(p) for p in split(gated)] == [[], ["a", "b"]]


def test_an_unknown_dependency_is_not_taken_for_free() -> None:
    automatic, approval = split([action("a", "ghost")])
    assert keys(automatic) == [] and keys(approval) == ["a"]
