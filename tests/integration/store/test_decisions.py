"""``autonomous.decisions`` and ``autonomous.action_outcomes``: action ids from the database in the
actions' order, decisions read back whole, outcomes replaced per (execution, action), statistics by
pattern else event type; and the reads analysis adds to firings and templates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec

from opsresponder.core.batch import Batch
from opsresponder.rules.evaluation import FIRINGS, Firing
from opsresponder.rules.templates import ScriptCatalog, read_template
from opsresponder.store.decisions import DecisionAction, DecisionRepository
from opsresponder.store.events import EventRepository
from opsresponder.store.firings import FiringRepository, FiringsWriter
from opsresponder.store.outcomes import ActionOutcome, OutcomeRepository, OutcomeStats
from opsresponder.store.response_templates import ResponseTemplateRepository
from tests.factories import make_event, prepared

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def action(key: str, **fields: object) -> DecisionAction:
    values: dict[str, object] = {
        "action_id": 0,
        "key": key,
        "name": key,
        "action_type": "diagnostic",
        "timeout_seconds": 60.0,
        "risk_level": "low",
        "risk_score": 0.3,
        "approval_required": False,
        "estimated_duration_minutes": 1.0,
        "success_probability": 0.8,
    }
    values.update(fields)
    return msgspec.convert(values, DecisionAction)


async def test_decisions_round_trip_with_database_action_ids(db_pool: asyncpg.Pool) -> None:
    decisions = DecisionRepository(db_pool)
    first = await decisions.create(
        event_id=7,
        created_at=NOW,
        requested_by="ops",
        template_id="cpu",
        template_version="1",
        variables={"n": 3},
        inputs={"context": {"criticality": {"value": "high", "source": "request"}}},
        analysis={"recommended_action": "investigate"},
        actions=[action("b", parameters={"n": 3}, depends_on=[]), action("a", depends_on=["b"])],
        approval={"required": False},
    )
    second = await decisions.create(event_id=7, created_at=NOW, requested_by="rules", actions=[action("a")])
    ids = [a.action_id for a in first.recommended_actions]
    assert ids == sorted(ids) and ids[0] > 0
    assert second.recommended_actions[0].action_id > ids[-1]
    assert [a.key for a in first.recommended_actions] == ["b", "a"]
    assert await decisions.get(first.decision_id) == first
    assert await decisions.get(second.decision_id + 100) is None
    listed = await decisions.list_for_event(7)
    assert [d.decision_id for d in listed] == [second.decision_id, first.decision_id]
    empty = await decisions.create(event_id=8, created_at=NOW, requested_by="ops")
    assert (await decisions.get(empty.decision_id)) == empty and empty.recommended_actions == []


def outcome(i: int, **fields: object) -> ActionOutcome:
    values: dict[str, object] = {
        "execution_id": f"x{i}",
        "decision_id": 1,
        "event_id": 1,
        "template_id": "cpu",
        "action_key": "diag",
        "script": "check_cpu",
        "event_type": "threshold_breach",
        "pattern_id": "p1",
        "target": "web-01",
        "status": "completed",
        "success": True,
        "duration_seconds": float(10 * (i + 1)),
        "finished_at": NOW,
    }
    values.update(fields)
    return msgspec.convert(values, ActionOutcome)


async def test_outcome_statistics(db_pool: asyncpg.Pool) -> None:
    outcomes = OutcomeRepository(db_pool)
    since = NOW - timedelta(days=1)
    await outcomes.record([])
    await outcomes.record([outcome(i) for i in range(10)])  # 10, 20, ... 100 s
    await outcomes.record([outcome(0, success=False, status="failed")])  # replaces x0: 9 of 10 succeed
    await outcomes.record(
        [
            outcome(20, status="cancelled", success=False),
            outcome(21, finished_at=NOW - timedelta(days=2)),
            outcome(22, action_key="kill", pattern_id=None, success=False, status="failed"),
            outcome(23, action_key="kill", pattern_id="p2", event_type="other"),
        ]
    )
    stats = await outcomes.stats_for_template(
        "cpu", ["diag", "kill", "none"], "p1", "threshold_breach", since
    )
    diag = stats["diag"]
    assert (diag.basis, diag.runs, diag.successes) == ("pattern", 10, 9)
    assert diag.mean_seconds == 60.0 and diag.p50_seconds == 60.0
    assert diag.p90_seconds is not None and abs(diag.p90_seconds - 92.0) < 1e-9
    assert stats["kill"] == OutcomeStats(basis="event_type", runs=1, successes=0)
    assert stats["none"] == OutcomeStats()
    by_type = await outcomes.stats("cpu", "diag", None, "threshold_breach", since)
    assert (by_type.basis, by_type.runs, by_type.successes) == ("event_type", 10, 9)
    assert await db_pool.fetchval("SELECT count(*) FROM autonomous.action_outcomes") == 14


async def test_rules_fired_for_an_event(db_pool: asyncpg.Pool) -> None:
    events = EventRepository(db_pool, timedelta(minutes=5), writers=[FiringsWriter()])
    stored = prepared(make_event(host="a"), make_event(host="b"))
    batch = Batch(stored)
    batch.add(
        FIRINGS,
        [
            Firing(9, "", "trigger", NOW, (stored[0],), {}),
            Firing(4, "", "trigger", NOW, (stored[0], stored[1]), {}),
            Firing(9, "g", "trigger", NOW, (stored[0],), {}),
        ],
    )
    await events.store_batch(stored, batch=batch)
    firings = FiringRepository(db_pool)
    assert stored[0].id is not None and stored[1].id is not None
    assert await firings.rules_fired_for(stored[0].id) == [9, 4]
    assert await firings.rules_fired_for(stored[1].id) == [4]
    assert await firings.rules_fired_for(stored[1].id + 1000) == []


async def test_a_template_version_stays_findable(db_pool: asyncpg.Pool) -> None:
    templates = ResponseTemplateRepository(db_pool)
    notify = {"id": "n", "name": "n", "type": "notification", "channels": ["email"]}
    body = {"id": "t", "name": "t", "version": "1", "actions": [notify]}
    template = read_template(msgspec.json.encode(body), "json", ScriptCatalog())
    created = await templates.create(template, "ops")
    assert await templates.get_version("t", "1") == created.template
    assert await templates.get_version("t", "2") is None
