"""Retention rules and scheduled jobs: what they accept, the SQL they produce, the events schema's rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from opsresponder.store.retention import (
    DEDUP_KEEP_MARGIN,
    RetentionMetrics,
    RetentionReport,
    RetentionRule,
    TableReport,
    event_rules,
)
from opsresponder.store.scheduler import ScheduledJob

NOW = datetime(2025, 3, 31, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("table", "column"),
    [
        ("events.events; DROP TABLE x", "received_at"),
        ("Events.events", "received_at"),
        ("a.b.c", "received_at"),
        ("events.events", "received_at DESC"),
        ("events.events", "t.received_at"),
        ("", "received_at"),
    ],
)
def test_identifiers_that_are_not_plain_are_refused(table: str, column: str) -> None:
    with pytest.raises(ValueError, match=r"identifier|unqualified"):
        RetentionRule(table, column, timedelta(days=1), 100)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_age": timedelta(0), "batch_size": 100},
        {"max_age": timedelta(days=-1), "batch_size": 100},
        {"max_age": timedelta(days=1), "batch_size": 0},
        {"max_age": timedelta(days=1), "batch_size": 100, "keep_window": timedelta(seconds=-1)},
    ],
)
def test_non_positive_ages_and_batches_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must"):
        RetentionRule("events.events", "received_at", **kwargs)  # type: ignore[arg-type]


def test_a_plain_rule_deletes_the_oldest_rows_by_ctid_in_one_limited_statement() -> None:
    rule = RetentionRule("autonomous.audit", "recorded_at", timedelta(days=365), batch_size=10)
    sql = rule.delete_statement()
    assert sql == (
        "DELETE FROM autonomous.audit WHERE ctid = ANY(ARRAY(SELECT t.ctid FROM autonomous.audit AS t "
        "WHERE t.recorded_at < $1 ORDER BY t.recorded_at LIMIT $2 FOR UPDATE OF t SKIP LOCKED))"
    )
    assert rule.arguments(NOW) == (NOW - timedelta(days=365), 10)


def test_a_keep_predicate_is_excluded_and_gets_its_horizon_as_third_argument() -> None:
    rule = RetentionRule(
        "events.events",
        "received_at",
        timedelta(days=30),
        100,
        keep_if="t.pinned OR t.seen >= $3",
        keep_window=timedelta(hours=2),
    )
    assert "AND NOT (t.pinned OR t.seen >= $3)" in rule.delete_statement()
    assert rule.arguments(NOW) == (NOW - timedelta(days=30), rule.batch_size, NOW - timedelta(hours=2))


def test_a_keep_predicate_without_a_horizon_gets_no_third_argument() -> None:
    # PostgreSQL counts a statement's parameters by the highest it references and refuses one more.
    rule = RetentionRule("rules.rule_firings", "fired_at", timedelta(days=30), 100, keep_if="t.open")
    assert "AND NOT (t.open)" in rule.delete_statement()
    assert rule.arguments(NOW) == (NOW - timedelta(days=30), 100)


def test_dependent_rows_are_deleted_in_the_same_statement_which_counts_the_rows_of_the_rule() -> None:
    rule = RetentionRule(
        "events.events",
        "received_at",
        timedelta(days=30),
        10,
        also_delete=(("events.event_traces", "event_id"),),
    )
    assert rule.delete_statement() == (
        "WITH gone AS (DELETE FROM events.events WHERE ctid = ANY(ARRAY("
        "SELECT t.ctid FROM events.events AS t WHERE t.received_at < $1 ORDER BY t.received_at LIMIT $2 "
        "FOR UPDATE OF t SKIP LOCKED)) RETURNING id), "
        "also_0 AS (DELETE FROM events.event_traces WHERE event_id IN (SELECT id FROM gone)) "
        "SELECT count(*) FROM gone"
    )
    with pytest.raises(ValueError, match="identifier"):
        RetentionRule("events.events", "received_at", timedelta(days=1), 1, also_delete=(("x; drop", "id"),))


def test_event_rules_take_the_events_traces_along() -> None:
    events, _ = event_rules(
        events_max_age=timedelta(days=30), dedup_window=timedelta(minutes=5), batch_size=9
    )
    assert events.also_delete == (
        ("events.event_traces", "event_id"),
        ("events.event_correlations", "event_id"),
    )


def test_event_rules_age_events_by_received_at_and_keep_dedup_rows_beyond_the_window() -> None:
    window = timedelta(minutes=5)
    events, dedup = event_rules(events_max_age=timedelta(days=30), dedup_window=window, batch_size=100)
    assert (events.table, events.timestamp_column, events.max_age) == (
        "events.events",
        "received_at",
        timedelta(days=30),
    )
    assert (dedup.table, dedup.timestamp_column) == ("events.dedup", "last_seen_at")
    # Never shorter than the window, and the same horizon that spares still-repeating events.
    assert dedup.max_age == events.keep_window == window + DEDUP_KEEP_MARGIN
    assert dedup.max_age >= window
    assert events.keep_if is not None and "events.dedup" in events.keep_if
    assert events.batch_size == dedup.batch_size == 100


def test_a_report_is_failed_over_incomplete_over_ok() -> None:
    def report(*tables: TableReport) -> RetentionReport:
        return RetentionReport(started_at=NOW, tables={f"s.t{i}": t for i, t in enumerate(tables)})

    ok = TableReport(deleted=3, batches=1)
    incomplete = TableReport(complete=False)
    failed = TableReport(error="boom")
    assert report(ok).result == "ok"
    assert report(ok, incomplete).result == "incomplete"
    assert report(ok, incomplete, failed).result == "failed"
    assert report(ok, incomplete, failed).deleted == {"s.t0": 3, "s.t1": 0, "s.t2": 0}


async def _noop(_now: datetime) -> None:
    return None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "", "interval": timedelta(seconds=1)},
        {"name": "j", "interval": timedelta(0)},
        {"name": "j", "interval": timedelta(seconds=1), "jitter": timedelta(seconds=-1)},
        {"name": "j", "interval": timedelta(seconds=1), "timeout": timedelta(0)},
    ],
)
def test_a_scheduled_job_needs_a_name_and_positive_periods(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"name|must"):
        ScheduledJob(run=_noop, **kwargs)  # type: ignore[arg-type]


def test_metrics_exist_at_zero_before_the_first_run() -> None:
    registry = CollectorRegistry()
    RetentionMetrics(registry)
    for result in ("ok", "incomplete", "failed"):
        assert registry.get_sample_value("opsresponder_retention_runs_total", {"result": result}) == 0
