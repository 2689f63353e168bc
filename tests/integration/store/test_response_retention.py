"""Retention of the rule-to-response side against a real PostgreSQL, with an injected clock: settled
firings and the response audit trail go with their child rows once old; open firings, unfinished
executions, the decisions they name and recent rows stay."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from opsresponder.config import RetentionConfig
from opsresponder.store.correlations import correlation_rules
from opsresponder.store.firings import firing_rules
from opsresponder.store.response_retention import SETTLED_EXECUTIONS, response_rules
from opsresponder.store.retention import RetentionJob, RetentionMetrics, RetentionRule, event_rules

T0 = datetime(2025, 1, 1, tzinfo=UTC)
EVENTS_AGE = timedelta(days=30)
RESPONSE_AGE = timedelta(days=90)
RUN_AT = T0 + timedelta(days=91)  # T0 is past both ages
OLD = T0
RECENT = RUN_AT - timedelta(days=1)
CONFIG = RetentionConfig()


def build_job(pool: asyncpg.Pool, registry: CollectorRegistry, rules: list[RetentionRule]) -> RetentionJob:
    return RetentionJob(
        pool,
        rules,
        RetentionMetrics(registry),
        clock=lambda: RUN_AT,
        max_run_duration=timedelta(seconds=CONFIG.max_run_seconds),
    )


def all_rules(batch_size: int = 2) -> list[RetentionRule]:
    """The response side's rules as assembly.py lists them (small batches: several per table)."""
    return firing_rules(max_age=EVENTS_AGE, batch_size=batch_size) + response_rules(
        max_age=RESPONSE_AGE, batch_size=batch_size
    )


def deleted(registry: CollectorRegistry, table: str) -> float | None:
    value: float | None = registry.get_sample_value(
        "opsresponder_retention_rows_deleted_total", {"table": table}
    )
    return value


async def column(pool: asyncpg.Pool, sql: str) -> set[int]:
    return {r[0] for r in await pool.fetch(sql)}


async def add_firing(pool: asyncpg.Pool, fired_at: datetime, status: str) -> int:
    firing_id: int = await pool.fetchval(
        "INSERT INTO rules.rule_firings (firing_key, rule_id, group_key, kind, fired_at, status) "
        "VALUES ($1, 1, 'web-1', 'trigger', $2, $3) RETURNING id",
        uuid.uuid4(),
        fired_at,
        status,
    )
    return firing_id


async def add_plan(pool: asyncpg.Pool, firing_id: int, decision_id: int, at: datetime) -> None:
    await pool.execute(
        "INSERT INTO autonomous.firing_responses (firing_id, decision_id, automatic_action_ids, "
        "approval_action_ids, created_at) VALUES ($1, $2, '{1}', '{}', $3)",
        firing_id,
        decision_id,
        at,
    )


async def add_decision(pool: asyncpg.Pool, at: datetime) -> int:
    """A decision with one action."""
    decision_id: int = await pool.fetchval(
        "INSERT INTO autonomous.decisions (event_id, created_at, requested_by) VALUES (1, $1, 'test') "
        "RETURNING id",
        at,
    )
    await pool.execute(
        "INSERT INTO autonomous.decision_actions (decision_id, position, key, body) "
        "VALUES ($1, 0, 'restart', '{}'::jsonb)",
        decision_id,
    )
    return decision_id


async def add_execution(pool: asyncpg.Pool, decision_id: int, at: datetime, status: str) -> int:
    """An execution with one action, one log line, an approval and a verification (decided unless the
    execution waits for approval or `status` is finished and the caller changes it)."""
    execution_id: int = await pool.fetchval(
        "INSERT INTO autonomous.executions (decision_id, event_id, status, dry_run, requested_by, plan, "
        "plan_hash, max_minutes, created_at) "
        "VALUES ($1, 1, $2, $2 = 'dry_run', 'test', '{}'::jsonb, 'h', 5, $3) RETURNING id",
        decision_id,
        status,
        at,
    )
    await pool.execute(
        "INSERT INTO autonomous.execution_actions (execution_id, phase, action_key, position, status) "
        "VALUES ($1, 'action', 'restart', 0, 'completed')",
        execution_id,
    )
    await pool.execute(
        "INSERT INTO autonomous.execution_logs (execution_id, at, level, message) "
        "VALUES ($1, $2, 'info', 'Started by test.')",
        execution_id,
        at,
    )
    pending = status == "pending_approval"
    await pool.execute(
        "INSERT INTO autonomous.approvals (execution_id, plan_hash, status, requested_by, approvers, "
        "risk_level, business_impact, reason, actions, created_at, expires_at, decided_by, decided_at) "
        "VALUES ($1, 'h', $2, 'test', '{ops}', 'high', 'low', 'risky', '[]'::jsonb, $3, $4, $5, $6)",
        execution_id,
        "pending" if pending else "approved",
        at,
        at + timedelta(hours=1),
        None if pending else "ops",
        None if pending else at + timedelta(minutes=1),
    )
    await pool.execute(
        "INSERT INTO autonomous.verifications (execution_id, action_keys, since, due_at, quiet_until, "
        "status, created_at) VALUES ($1, '{restart}', $2, $2, $2, 'passed', $2)",
        execution_id,
        at,
    )
    return execution_id


async def test_settled_firings_go_with_their_plans_open_ones_stay(db_pool: asyncpg.Pool) -> None:
    decision = await add_decision(db_pool, RECENT)
    done = await add_firing(db_pool, OLD, "done")
    failed = await add_firing(db_pool, OLD, "failed")
    new = await add_firing(db_pool, OLD, "new")
    claimed = await add_firing(db_pool, OLD, "claimed")
    recent = await add_firing(db_pool, RECENT, "done")
    # Just inside the age: settled, but not old enough.
    edge = await add_firing(db_pool, RUN_AT - EVENTS_AGE + timedelta(seconds=1), "done")
    for firing in (done, new, recent):
        await add_plan(db_pool, firing, decision, OLD)
    registry = CollectorRegistry()
    job = build_job(db_pool, registry, firing_rules(max_age=EVENTS_AGE, batch_size=1))

    report = await job.run()

    assert report.result == "ok"
    assert report.deleted == {"rules.rule_firings": 2}
    assert report.tables["rules.rule_firings"].batches == 3  # one row each, then an empty one
    firings = "SELECT id FROM rules.rule_firings"
    assert await column(db_pool, firings) == {new, claimed, recent, edge}
    plans = "SELECT firing_id FROM autonomous.firing_responses"
    assert await column(db_pool, plans) == {new, recent}
    assert deleted(registry, "rules.rule_firings") == 2
    assert failed not in await column(db_pool, firings)

    # An open firing settles (the response side came back): the next run takes it, with its plan.
    await db_pool.execute("UPDATE rules.rule_firings SET status = 'done' WHERE id = $1", new)
    await job.run()
    assert await column(db_pool, firings) == {claimed, recent, edge}
    assert await column(db_pool, plans) == {recent}
    assert deleted(registry, "rules.rule_firings") == 3


async def test_finished_executions_go_with_their_rows_unfinished_ones_stay(db_pool: asyncpg.Pool) -> None:
    gone = {
        status: await add_execution(db_pool, await add_decision(db_pool, OLD), OLD, status)
        for status in SETTLED_EXECUTIONS
    }
    kept = {
        status: await add_execution(db_pool, await add_decision(db_pool, OLD), OLD, status)
        for status in ("pending_approval", "queued", "running", "rolling_back")
    }
    # Finished long ago, but its verification has not decided: the verdict may still ask for a rollback.
    verifying = await add_execution(db_pool, await add_decision(db_pool, OLD), OLD, "completed")
    await db_pool.execute(
        "UPDATE autonomous.verifications SET status = 'acting' WHERE execution_id = $1", verifying
    )
    recent = await add_execution(db_pool, await add_decision(db_pool, RECENT), RECENT, "completed")
    remaining = {*kept.values(), verifying, recent}
    registry = CollectorRegistry()
    job = build_job(db_pool, registry, all_rules())

    report = await job.run()

    assert report.result == "ok"
    assert report.deleted["autonomous.executions"] == len(gone) == 6
    assert deleted(registry, "autonomous.executions") == 6
    # Every row of a deleted execution went with it: actions and logs by cascade, approval and
    # verification in the same statement.
    for table in ("executions", "execution_actions", "execution_logs", "approvals", "verifications"):
        key = "id" if table == "executions" else "execution_id"
        assert await column(db_pool, f"SELECT {key} FROM autonomous.{table}") == remaining, table
    # The decisions of the deleted executions went in the same run; those still named stay.
    named = await column(db_pool, "SELECT decision_id FROM autonomous.executions")
    assert await column(db_pool, "SELECT id FROM autonomous.decisions") == named
    assert await column(db_pool, "SELECT decision_id FROM autonomous.decision_actions") == named
    assert report.deleted["autonomous.decisions"] == 6
    assert deleted(registry, "autonomous.decisions") == 6

    # Once its verification has passed, the next run takes the kept execution and its decision.
    await db_pool.execute(
        "UPDATE autonomous.verifications SET status = 'passed' WHERE execution_id = $1", verifying
    )
    report = await job.run()
    assert report.deleted["autonomous.executions"] == 1
    assert report.deleted["autonomous.decisions"] == 1
    assert await column(db_pool, "SELECT id FROM autonomous.executions") == {*kept.values(), recent}


async def test_a_decision_goes_once_nothing_names_it(db_pool: asyncpg.Pool) -> None:
    unused = await add_decision(db_pool, OLD)  # analysed, never executed
    recent = await add_decision(db_pool, RECENT)
    # The plan of a firing still open: a retry of the firing reuses its decision.
    planned = await add_decision(db_pool, OLD)
    firing = await add_firing(db_pool, RUN_AT - timedelta(minutes=5), "claimed")
    await add_plan(db_pool, firing, planned, OLD)
    # Approved long after the analysis: the execution is recent, its decision old.
    approved_late = await add_decision(db_pool, OLD)
    await add_execution(db_pool, approved_late, RECENT, "completed")
    registry = CollectorRegistry()
    job = build_job(db_pool, registry, all_rules())

    report = await job.run()

    assert report.deleted["autonomous.decisions"] == 1
    decisions = await column(db_pool, "SELECT id FROM autonomous.decisions")
    assert decisions == {recent, planned, approved_late}
    assert unused not in await column(db_pool, "SELECT decision_id FROM autonomous.decision_actions")

    # The firing settles and ages out (with its plan); the decision then goes too.
    await db_pool.execute(
        "UPDATE rules.rule_firings SET status = 'done', fired_at = $2 WHERE id = $1", firing, OLD
    )
    report = await job.run()
    assert report.deleted == {
        "rules.rule_firings": 1,
        "autonomous.executions": 0,
        "autonomous.decisions": 1,
        "autonomous.action_outcomes": 0,
        "autonomous.execution_scores": 0,
        "autonomous.feedback": 0,
    }
    assert await column(db_pool, "SELECT id FROM autonomous.decisions") == {recent, approved_late}
    assert deleted(registry, "autonomous.decisions") == 2


async def test_the_learning_history_goes_by_its_own_time(db_pool: asyncpg.Pool) -> None:
    for n, at in enumerate((OLD, OLD, RECENT, RUN_AT - RESPONSE_AGE + timedelta(seconds=1))):
        execution = f"exec_{n}"
        await db_pool.execute(
            "INSERT INTO autonomous.action_outcomes (execution_id, decision_id, event_id, template_id, "
            "action_key, event_type, status, success, duration_seconds, finished_at) "
            "VALUES ($1, 1, 1, 'web', 'restart', 'service_down', 'completed', true, 1.5, $2)",
            execution,
            at,
        )
        await db_pool.execute(
            "INSERT INTO autonomous.execution_scores (execution_id, decision_id, template_id, event_type, "
            "status, rolled_back, success_score, scored_at) "
            "VALUES ($1, 1, 'web', 'service_down', 'completed', false, 1.0, $2)",
            execution,
            at,
        )
        await db_pool.execute(
            "INSERT INTO autonomous.feedback (execution_id, decision_id, feedback_type, rating, given_by, "
            "created_at) VALUES ($1, 1, 'effectiveness', 5, 'ops', $2)",
            execution,
            at,
        )
    # Learning's policies are the current state and their explanation: never deleted.
    await db_pool.execute(
        "INSERT INTO autonomous.action_policies (template_id, action_key, demoted, reason, changed_at) "
        "VALUES ('web', 'restart', true, 'failing', $1)",
        OLD,
    )
    await db_pool.execute(
        "INSERT INTO autonomous.action_policy_changes (template_id, action_key, change, reason, runs, at) "
        "VALUES ('web', 'restart', 'demoted', 'failing', 10, $1)",
        OLD,
    )
    registry = CollectorRegistry()

    report = await build_job(db_pool, registry, all_rules(batch_size=1)).run()

    for table, key in (("action_outcomes", "execution_id"), ("execution_scores", "execution_id")):
        assert report.deleted[f"autonomous.{table}"] == 2
        assert deleted(registry, f"autonomous.{table}") == 2
        rows = await db_pool.fetch(f"SELECT {key} FROM autonomous.{table}")
        assert {r[0] for r in rows} == {"exec_2", "exec_3"}
    assert report.deleted["autonomous.feedback"] == 2
    rows = await db_pool.fetch("SELECT execution_id FROM autonomous.feedback")
    assert {r[0] for r in rows} == {"exec_2", "exec_3"}
    assert await db_pool.fetchval("SELECT count(*) FROM autonomous.action_policies") == 1
    assert await db_pool.fetchval("SELECT count(*) FROM autonomous.action_policy_changes") == 1


@pytest.mark.parametrize(
    "rule",
    [
        *event_rules(events_max_age=EVENTS_AGE, dedup_window=timedelta(minutes=5), batch_size=10),
        *correlation_rules(max_age=EVENTS_AGE, batch_size=10),
        *all_rules(),
    ],
    ids=lambda r: r.table,
)
async def test_every_rule_walks_an_index_on_its_timestamp(db_pool: asyncpg.Pool, rule: RetentionRule) -> None:
    """Without one, every batch would scan the whole table (RetentionRule's contract)."""
    indexed = await db_pool.fetchval(
        """SELECT EXISTS (
               SELECT 1 FROM pg_index AS i
               JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
               WHERE i.indrelid = $1::regclass AND a.attname = $2 AND i.indpred IS NULL)""",
        rule.table,
        rule.timestamp_column,
    )
    assert indexed
