"""Retention: delete rows past their age in small batches, each its own short transaction.

Every table with a retention period is described by a `RetentionRule`: which table, which timestamp
column defines a row's age (it must be indexed), the maximum age, the batch size, and optionally a
predicate for old rows that must be kept anyway. `RetentionJob` applies a list of rules; the scheduler
(`store/scheduler.py`) runs it once per period across every process.

Where rules come from: `event_rules` here, for ``events.events`` and ``events.dedup``; an event's trace
and correlations are deleted in the same statement as the event (`EVENT_DEPENDENTS`). A feature that
creates a table with a retention period adds a function returning its rules next to its repository, and
``assembly.py`` concatenates them into the list given to `RetentionJob`:

- rule firings (`store.firings.firing_rules`): ``retention.events_days`` on ``fired_at``, settled ones
  only, with the response loop's plan for each;
- the ``autonomous`` schema (`store.response_retention.response_rules`): ``retention.response_days``,
  settled executions with their rows, then the decisions nothing names, outcomes, scores and feedback.

Why batches and not one DELETE: one statement removing a month of events would hold row locks on millions
of rows and keep one transaction open for minutes, which holds back vacuum everywhere and blocks any DDL
(a migration) queued behind it. A batch of a few thousand rows commits in milliseconds. Partitioning by
time would make retention a ``DROP``, but it complicates the primary key and dedup; batched deletes are
simpler, and stay so until a measurement says they fall behind. See docs/retention.md.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, Literal

import asyncpg
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from opsresponder.core.clock import Clock, utcnow
from opsresponder.store.errors import StoreError
from opsresponder.store.pool import connection

log = structlog.get_logger(__name__)

# Dedup rows and the events they point at outlive the dedup window by this margin. The dedup upsert
# compares a row's last_seen_at with the *incoming* event's received_at, not with now; an event that waited
# in the intake (an outage between this process and PostgreSQL) carries an older received_at, and must
# still find its row. An hour of extra dedup rows costs little.
DEDUP_KEEP_MARGIN: Final = timedelta(hours=1)

RunResult = Literal["ok", "incomplete", "failed"]
BatchListener = Callable[["RetentionRule", int], Awaitable[None]]

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$")
_DELETED = re.compile(r"^DELETE (\d+)$")

# An old event is kept while its dedup row still points at it within the keep window: a duplicate arriving
# now would add to that event's duplicate_count, and the webhook would answer with its id, so it must
# exist. Matching on fingerprint uses the dedup primary key.
_STILL_DEDUPLICATING: Final = (
    "EXISTS (SELECT 1 FROM events.dedup AS k "
    "WHERE k.fingerprint = t.fingerprint AND k.event_id = t.id AND k.last_seen_at >= $3)"
)


# Rows that exist only for their event and go with it: its decision trace (store/traces.py) and its
# correlations (store/correlations.py; a later event's correlations with it go with that later event).
EVENT_DEPENDENTS: Final = (("events.event_traces", "event_id"), ("events.event_correlations", "event_id"))


class RetentionError(StoreError):
    """A retention run failed for at least one table; the others were still processed."""


@dataclass(frozen=True, slots=True)
class RetentionRule:
    """Rows of `table` whose `timestamp_column` is older than `max_age` are deleted, `batch_size` at a time.

    Attributes:
        table: schema-qualified name (``events.events``); also the ``table`` label of the metrics.
        timestamp_column: what a row's age is counted from; needs an index, which every batch walks.
        max_age: rows older than this (relative to the run's time) are deleted.
        batch_size: rows per DELETE, each its own transaction.
        keep_if: SQL predicate over the row (aliased ``t``) for old rows that must be kept anyway; it may
            use ``$3``, the run's time minus `keep_window`. Rows it keeps are looked at again each run.
        keep_window: see `keep_if`.
        also_delete: ``(table, column)`` pairs of tables whose rows belong to a row of this one, through
            `column` holding its ``id``: deleted in the same statement as their row (what ``ON DELETE
            CASCADE`` does, without the foreign key's check on every insert, which for the decision traces
            cost more than writing the trace row itself).

    Identifiers are checked against a strict pattern because they are written into SQL; rules are code,
    never configuration.
    """

    table: str
    timestamp_column: str
    max_age: timedelta
    batch_size: int
    keep_if: str | None = None
    keep_window: timedelta = timedelta(0)
    also_delete: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for name in (self.table, self.timestamp_column, *(n for pair in self.also_delete for n in pair)):
            if not _IDENTIFIER.match(name):
                raise ValueError(f"retention rule: {name!r} is not a plain lower-case SQL identifier")
        if "." in self.timestamp_column:
            raise ValueError(f"retention rule for {self.table}: the timestamp column must be unqualified")
        if self.max_age <= timedelta(0):
            raise ValueError(f"retention rule for {self.table}: max_age must be positive")
        if self.batch_size <= 0:
            raise ValueError(f"retention rule for {self.table}: batch_size must be positive")
        if self.keep_window < timedelta(0):
            raise ValueError(f"retention rule for {self.table}: keep_window must not be negative")

    def cutoff(self, now: datetime) -> datetime:
        """Rows with a timestamp strictly before this are deleted by a run at `now`."""
        return now - self.max_age

    def delete_statement(self) -> str:
        """One batch: ``$1`` the cutoff, ``$2`` the batch size, ``$3`` the keep horizon (with `keep_if`).

        The oldest rows go first, through the timestamp index. Rows are addressed by ``ctid`` so that any
        table works, primary key or not; ``ctid = ANY(ARRAY(...))`` is executed as a TID scan.
        Rows another transaction holds locked are skipped, left for a later run: retention never waits
        for the pipeline, so it can never close a wait cycle with the pipeline's ordered batch
        transactions, which PostgreSQL's deadlock detector could not see (see `store.write_order`).
        """
        keep = f" AND NOT ({self.keep_if})" if self.keep_if else ""
        col = self.timestamp_column
        delete = (
            f"DELETE FROM {self.table} WHERE ctid = ANY(ARRAY("
            f"SELECT t.ctid FROM {self.table} AS t WHERE t.{col} < $1{keep} ORDER BY t.{col} LIMIT $2 "
            "FOR UPDATE OF t SKIP LOCKED))"
        )
        if not self.also_delete:
            return delete
        # With `also_delete`: one statement still, answering the count of this table's deleted rows.
        parts = [f"gone AS ({delete} RETURNING id)"]
        parts += [
            f"also_{i} AS (DELETE FROM {table} WHERE {column} IN (SELECT id FROM gone))"
            for i, (table, column) in enumerate(self.also_delete)
        ]
        return f"WITH {', '.join(parts)} SELECT count(*) FROM gone"

    def arguments(self, now: datetime) -> tuple[object, ...]:
        base: tuple[object, ...] = (self.cutoff(now), self.batch_size)
        # Only a keep_if that uses $3 gets it: PostgreSQL counts a statement's parameters by the highest
        # one it references, and refuses an argument more.
        return (*base, now - self.keep_window) if self.keep_if and "$3" in self.keep_if else base


def event_rules(
    *, events_max_age: timedelta, dedup_window: timedelta, batch_size: int
) -> list[RetentionRule]:
    """The rules of the ``events`` schema.

    Events age from ``received_at`` (our clock; ``occurred_at`` is the sender's and may be far off). An
    old event whose dedup row was seen within the dedup window (plus `DEDUP_KEEP_MARGIN`) is kept until it
    stops repeating. Dedup rows matter only within the window, so they are pruned after the same horizon,
    which keeps the two rules consistent: once a dedup row may go, so may its event.
    """
    dedup_keep = dedup_window + DEDUP_KEEP_MARGIN
    return [
        RetentionRule(
            "events.events",
            "received_at",
            events_max_age,
            batch_size,
            keep_if=_STILL_DEDUPLICATING,
            keep_window=dedup_keep,
            also_delete=EVENT_DEPENDENTS,
        ),
        RetentionRule("events.dedup", "last_seen_at", dedup_keep, batch_size),
    ]


class RetentionMetrics:
    """``opsresponder_retention_*``: what this process's runs removed and how they ended.

    Only the process that won a period's run reports it; sum (counters) or take the max (timestamps)
    across replicas.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.rows_deleted = Counter(
            "opsresponder_retention_rows_deleted_total",
            "Rows deleted by retention, by table.",
            ["table"],
            registry=registry,
        )
        self.runs = Counter(
            "opsresponder_retention_runs_total",
            "Retention runs, by result: ok, incomplete (stopped at the time budget), failed.",
            ["result"],
            registry=registry,
        )
        self.last_run = Gauge(
            "opsresponder_retention_last_run_timestamp_seconds",
            "Unix time at which this process last finished a retention run, whatever its result.",
            registry=registry,
        )
        self.last_success = Gauge(
            "opsresponder_retention_last_success_timestamp_seconds",
            "Unix time at which this process last finished a retention run that failed nowhere.",
            registry=registry,
        )
        # Present at 0 from the start, so that rate() and absence alerts work before the first run.
        for result in ("ok", "incomplete", "failed"):
            self.runs.labels(result)


@dataclass(slots=True)
class TableReport:
    """What one run did to one table."""

    deleted: int = 0
    batches: int = 0
    complete: bool = True
    error: str | None = None


@dataclass(slots=True)
class RetentionReport:
    """What one run did, per table (in rule order)."""

    started_at: datetime
    tables: dict[str, TableReport] = field(default_factory=dict)

    @property
    def result(self) -> RunResult:
        if any(t.error is not None for t in self.tables.values()):
            return "failed"
        if not all(t.complete for t in self.tables.values()):
            return "incomplete"
        return "ok"

    @property
    def deleted(self) -> dict[str, int]:
        return {table: t.deleted for table, t in self.tables.items()}


class RetentionJob:
    """Applies retention rules, batch by batch, reporting to metrics and the log.

    Invariants: every batch is one DELETE in its own implicit transaction, on a connection taken from the
    pool for that batch only, so the pipeline never waits for a pool connection or a lock for longer than
    one batch; rows deleted by committed batches stay deleted if the run fails or is cancelled later.
    One rule failing (a missing table, an outage) does not stop the others.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        rules: Sequence[RetentionRule],
        metrics: RetentionMetrics,
        *,
        clock: Clock = utcnow,
        max_run_duration: timedelta,
        on_batch: BatchListener | None = None,
    ) -> None:
        tables = [r.table for r in rules]
        if len(tables) != len(set(tables)):
            raise ValueError(f"one retention rule per table: {tables}")
        self._pool = pool
        self._rules = list(rules)
        self._metrics = metrics
        self._clock = clock
        self._max_duration = max_run_duration.total_seconds()
        self._on_batch = on_batch
        for rule in self._rules:
            metrics.rows_deleted.labels(rule.table)

    @property
    def rules(self) -> list[RetentionRule]:
        return list(self._rules)

    async def run(self, now: datetime | None = None) -> RetentionReport:
        """Delete what is past its age at `now` (default: the clock) in every table.

        Returns the report of a run that completed or stopped at the time budget.

        Raises:
            RetentionError: at least one table failed (after all others were processed); counted as a
                failed run. Rows deleted before the failure stay deleted.
        """
        at = self._clock() if now is None else now
        report = RetentionReport(started_at=at)
        started = time.monotonic()
        deadline = started + self._max_duration
        for rule in self._rules:
            table = report.tables[rule.table] = TableReport()
            try:
                await self._apply(rule, at, deadline, table)
            except StoreError as e:
                # DatabaseUnavailableError included: the next rule will most likely fail the same way, but
                # trying costs one connection attempt and keeps the rules independent.
                table.error = str(e)
        self._report(report, time.monotonic() - started)
        if report.result == "failed":
            failed = {t: r.error for t, r in report.tables.items() if r.error is not None}
            raise RetentionError(f"retention failed for {', '.join(failed)}: {failed}")
        return report

    async def _apply(self, rule: RetentionRule, now: datetime, deadline: float, table: TableReport) -> None:
        sql = rule.delete_statement()
        args = rule.arguments(now)
        counter = self._metrics.rows_deleted.labels(rule.table)
        while True:
            deleted = await self._delete_batch(rule, sql, args)
            table.batches += 1
            table.deleted += deleted
            counter.inc(deleted)  # per batch, so a run that fails later still reports what it removed
            if self._on_batch is not None:
                await self._on_batch(rule, deleted)
            if deleted < rule.batch_size:
                return
            if time.monotonic() >= deadline:
                table.complete = False
                return

    async def _delete_batch(self, rule: RetentionRule, sql: str, args: tuple[object, ...]) -> int:
        async with connection(self._pool) as conn:
            try:
                if rule.also_delete:
                    return int(await conn.fetchval(sql, *args))
                status = await conn.execute(sql, *args)
            except asyncpg.PostgresError as e:
                raise RetentionError(f"deleting from {rule.table} failed: {e.__class__.__name__}: {e}") from e
        m = _DELETED.match(status)
        if m is None:
            raise RetentionError(f"deleting from {rule.table} returned an unexpected status {status!r}")
        return int(m.group(1))

    def _report(self, report: RetentionReport, duration: float) -> None:
        result = report.result
        finished = self._clock().timestamp()
        self._metrics.runs.labels(result).inc()
        self._metrics.last_run.set(finished)
        if result != "failed":
            self._metrics.last_success.set(finished)
        fields = {
            "deleted": report.deleted,
            "batches": {t: r.batches for t, r in report.tables.items()},
            "duration_seconds": round(duration, 3),
        }
        if result == "ok":
            log.info("Retention removed expired rows.", **fields)
        elif result == "incomplete":
            log.warning(
                "Retention stopped at its time budget; the next run continues.",
                incomplete=[t for t, r in report.tables.items() if not r.complete],
                **fields,
            )
        else:
            log.warning(
                "Retention failed for some tables; the next run tries again.",
                errors={t: r.error for t, r in report.tables.items() if r.error is not None},
                **fields,
            )
