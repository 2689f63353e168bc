"""What the stored events say about a trigger rule: its estimated trigger rate, and fields no event has.

The replay (`estimate`) selects, over the events of the last ``rules.estimate_days`` days (by
``occurred_at``; suppressed events excluded, as the rules stage never evaluates them), only what the
firing semantics need: each matching event's time and group key. The conditions are pushed down to SQL
(`Condition` compiles to a WHERE expression): when that is exact (``sql_exact``) PostgreSQL returns only
the matches; otherwise it returns a superset with the columns the conditions read, and `matches` decides
in Python. rules/replay.py then plays the window, threshold, cooldown and max-per-hour (or absence)
semantics over them. bench/rule_replay.py measures it over 1,000,000 events.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, cast

import asyncpg

from opsresponder.core.event import Event
from opsresponder.rules.conditions import Condition
from opsresponder.rules.conditions.fields import SEVERITY_RANK, Kind, Path, parse_path
from opsresponder.rules.conditions.nodes import Leaf, Node, Not
from opsresponder.rules.replay import AFTER, MATCH, Replay, Row, Semantics, describe_rate, no_history, per_day
from opsresponder.rules.sql import WhereClause
from opsresponder.rules.triggers import CompiledTriggerRule
from opsresponder.store.pool import connection

# Rows fetched per round trip while streaming the replay's rows: big enough that round trips are a small
# share of the time, small enough that a rule matching everything never holds the whole week in memory.
_CHUNK: Final = 50_000
# A week of matches sorts in this much memory (a million rows took ~35 MB); beyond it PostgreSQL spills.
_SORT_MEMORY: Final = "64MB"
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# Placeholder values for the Event fields a condition does not read (the replay builds events from only
# the columns it read, when the SQL was not exact).
_BLANK: Final[dict[str, Any]] = {
    "source": "",
    "source_type": "",
    "event_type": "",
    "severity": "info",
    "title": "",
}


@dataclass(frozen=True, slots=True)
class Estimate:
    """The rate text, and the figures it was made from (for tests and the bench)."""

    text: str
    sample_events: int
    firings: int
    replayed_rows: int


class RuleHistory:
    """Reads over ``events.events`` for the rules API; a read-only user of the events table."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        days: int,
        timeout_seconds: float,
        field_sample_events: int,
        min_severity: str = "info",
    ) -> None:
        """`min_severity`: less severe events are never evaluated by rules, so they are not replayed."""
        self._pool = pool
        minimum = SEVERITY_RANK[min_severity]
        self._levels = sorted(level for level, rank in SEVERITY_RANK.items() if rank >= minimum)
        self._days = days
        self._timeout = timeout_seconds
        self._field_sample = field_sample_events

    async def estimate(self, rule: CompiledTriggerRule, now: datetime) -> Estimate:
        """The rule's estimated trigger rate from the last `days` days before `now`.

        Raises:
            DatabaseUnavailableError: PostgreSQL cannot be reached.
        """
        try:
            async with asyncio.timeout(self._timeout):
                return await self._estimate(rule, now)
        except TimeoutError:
            text = f"not estimated: replaying {self._days} days took longer than {self._timeout:g} s"
            return Estimate(text, 0, 0, 0)

    async def _estimate(self, rule: CompiledTriggerRule, now: datetime) -> Estimate:
        start = now - timedelta(days=self._days)
        async with connection(self._pool) as conn:
            stats = await conn.fetchrow(
                """SELECT count(*), min(occurred_at) FROM events.events WHERE occurred_at > $1
                   AND occurred_at <= $2 AND suppressed_reason IS NULL AND severity = ANY($3::text[])""",
                start,
                now,
                self._levels,
            )
            assert stats is not None
            sample, first = stats
            if not sample:
                return Estimate(no_history(self._days), 0, 0, 0)
            # Absence is judged from the first stored event on: before it, nothing is known to be missing.
            replay = Replay(Semantics.of(rule.body), first.timestamp(), now.timestamp())
            async with conn.transaction():  # a cursor lives in a transaction
                # The ORDER BY sorts every match: in memory rather than in temporary files (~2x faster).
                await conn.execute(f"SET LOCAL work_mem = '{_SORT_MEMORY}'")
                replayed = await _replay(conn, rule, (start, now, self._levels), replay.feed)
        fired = replay.finish()
        counts = per_day(fired, first.timestamp(), start.timestamp(), now.timestamp())
        return Estimate(describe_rate(counts, sample), sample, len(fired), replayed)

    async def missing_fields(self, paths: Sequence[str]) -> list[str] | None:
        """The `paths` (metadata paths, optional fields) that none of the latest events has; None when no
        event is stored at all (nothing to compare with)."""
        if not paths:
            return []
        where = WhereClause()
        checks = [_present_sql(parse_path(p), where) for p in paths]
        limit = where.param(self._field_sample)
        async with connection(self._pool) as conn:
            row = await conn.fetchrow(
                f"""SELECT count(*), {", ".join(f"bool_or({c})" for c in checks)} FROM (
                        SELECT host, service, description, score, tags, metadata FROM events.events
                        ORDER BY occurred_at DESC, id DESC LIMIT {limit}) latest""",
                *where.args,
            )
        assert row is not None
        if not row[0]:
            return None
        return [path for path, present in zip(paths, row[1:], strict=True) if not present]


def _present_sql(path: Path | None, where: WhereClause) -> str:
    assert path is not None
    if path.kind is Kind.METADATA:
        # NULL for a missing path, which bool_or skips: only a present, non-null value counts.
        return f"jsonb_typeof(metadata #> {where.param(list(path.keys))}::text[]) <> 'null'"
    if path.field == "tags":
        return "cardinality(tags) > 0"
    return f"{path.field} IS NOT NULL"


async def _replay(
    conn: asyncpg.Connection,
    rule: CompiledTriggerRule,
    replayed: tuple[datetime, datetime, list[str]],
    feed: Callable[[list[Row]], None],
) -> int:
    """Feed (epoch seconds, group key, MATCH|AFTER) of every event in `replayed` (start, end, the
    severities rules evaluate) the rule's conditions (or ``absence.after``) match, in time order and in
    chunks; return how many rows PostgreSQL sent."""
    start, end, levels = replayed
    where = WhereClause()
    bounds = (
        f"occurred_at > {where.param(start)} AND occurred_at <= {where.param(end)}"
        f" AND severity = ANY({where.param(levels)}::text[])"
    )
    group = _group_key_sql(rule.group_by, where)
    conditions = [rule.condition] if rule.after is None else [rule.condition, rule.after]
    pushed = [c.root.sql(where) for c in conditions]
    exact = all(is_exact for _, is_exact in pushed)
    texts = [text or "true" for text, _ in pushed]
    columns: list[str] = []
    if not exact:
        kind = "0"
        columns = sorted({leaf.path.field for c in conditions for leaf in _leaves(c.root)})
    elif len(texts) == 1:
        kind = "1"  # every row matches
    else:
        # Each row's kind comes from PostgreSQL: bit 1 the conditions, bit 2 `after`.
        kind = f"((CASE WHEN {texts[0]} THEN 1 ELSE 0 END) + (CASE WHEN {texts[1]} THEN 2 ELSE 0 END))"
    select = ", ".join(["extract(epoch FROM occurred_at)::float8", group, kind, *columns])
    cursor = await conn.cursor(
        f"SELECT {select} FROM events.events WHERE {bounds} AND suppressed_reason IS NULL"
        f" AND ({' OR '.join(texts)}) ORDER BY occurred_at",
        *where.args,
    )
    sent = 0
    while chunk := await cursor.fetch(_CHUNK):
        sent += len(chunk)
        # Records unpack as (time, group, kind) rows; only a superset still needs matching.
        feed(cast("list[Row]", chunk) if exact else _matching(chunk, conditions, columns))
    return sent


def _matching(chunk: list[asyncpg.Record], conditions: list[Condition], columns: list[str]) -> list[Row]:
    """The rows of `chunk` the conditions match, with their kind; `columns` follow (time, group, kind)."""
    # One scratch event, its read fields set per row: building an Event per row costs several times more.
    event = Event(**_BLANK, occurred_at=_EPOCH, received_at=_EPOCH)
    setters = [(column, 3 + i) for i, column in enumerate(columns)]
    first = conditions[0].matches
    after = conditions[1].matches if len(conditions) > 1 else None
    out: list[Row] = []
    for row in chunk:
        for column, index in setters:
            setattr(event, column, row[index])
        bits = MATCH if first(event) else 0
        if after is not None and after(event):
            bits |= AFTER
        if bits:
            out.append((row[0], row[1], bits))
    return out


def _group_key_sql(paths: tuple[Path, ...], where: WhereClause) -> str:
    """One column per event: NULL without group_by, the text of one field, or a JSON array of several."""
    if not paths:
        return "NULL"
    values = [_group_sql(path, where) for path in paths]
    return values[0] if len(values) == 1 else f"json_build_array({', '.join(values)})::text"


def _group_sql(path: Path, where: WhereClause) -> str:
    """The text of a group_by path (NULL when missing), walking JSON objects only as conditions do."""
    if path.kind is not Kind.METADATA:
        return f"{path.field}::text"
    keys = list(path.keys)
    value = f"(metadata #>> {where.param(keys)}::text[])"
    if len(keys) == 1:
        return value
    # As in conditions (rules/conditions/sql.py): every step above the last must be an object.
    guards = " AND ".join(
        f"jsonb_typeof(metadata #> {where.param(keys[:depth])}::text[]) = 'object'"
        for depth in range(1, len(keys))
    )
    return f"(CASE WHEN {guards} THEN {value} END)"


def _leaves(node: Node) -> list[Leaf]:
    if isinstance(node, Leaf):
        return [node]
    if isinstance(node, Not):
        return _leaves(node.child)
    return [leaf for child in node.children for leaf in _leaves(child)]
