"""Trigger rules in ``rules.trigger_rules``: the API's CRUD, and what the rules stage loads.

Every change also moves ``rules.trigger_rule_changes.generation`` in its own transaction, so a replica
learns that its copy of the rules is stale from one cheap read (`change_marker`), deletions included.
Deleting a rule leaves its firings alone: ``rule_firings`` holds rule ids without a foreign key (history).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

import asyncpg
import msgspec
import structlog

from opsresponder.rules.conditions import ConditionError
from opsresponder.rules.evaluation import RuleSpec
from opsresponder.rules.triggers import StoredTriggerRule, TriggerRuleBody
from opsresponder.store.pool import connection

log = structlog.get_logger(__name__)

_BODY_COLUMNS: Final = (
    "name", "description", "conditions", "time_window_minutes", "threshold", "group_by",
    "max_triggers_per_hour", "cooldown_minutes", "absence", "active",
)  # fmt: skip
_COLUMNS: Final = f"id AS rule_id, {', '.join(_BODY_COLUMNS)}, created_by, created_at, updated_at, version"
_BUMP: Final = "UPDATE rules.trigger_rule_changes SET generation = generation + 1, changed_at = now()"


class TriggerRuleRepository:
    """`on_change` callbacks run after each committed change through this process (the rules stage's
    ``reload_soon``: a rule created through this replica's API is evaluated from the next batch on, not
    after the next ``rules.reload_seconds`` poll that other replicas rely on)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.on_change: list[Callable[[], None]] = []

    def _changed(self) -> None:
        for callback in self.on_change:
            callback()

    async def create(self, body: TriggerRuleBody, created_by: str) -> StoredTriggerRule:
        """Raises `DatabaseUnavailableError` when PostgreSQL cannot be reached."""
        placeholders = ", ".join(f"${i}" for i in range(1, len(_BODY_COLUMNS) + 2))
        async with connection(self.pool) as conn, conn.transaction():
            row = await conn.fetchrow(
                f"""INSERT INTO rules.trigger_rules ({", ".join(_BODY_COLUMNS)}, created_by)
                    VALUES ({placeholders}) RETURNING {_COLUMNS}""",
                *_body_args(body),
                created_by,
            )
            await conn.execute(_BUMP)
        assert row is not None
        self._changed()
        return _from_row(row)

    async def update(self, rule_id: int, body: TriggerRuleBody) -> StoredTriggerRule | None:
        """Replace a rule's definition and add one to its version (``created_*`` stay); None when absent."""
        assignments = ", ".join(f"{column} = ${i}" for i, column in enumerate(_BODY_COLUMNS, start=2))
        async with connection(self.pool) as conn, conn.transaction():
            row = await conn.fetchrow(
                f"""UPDATE rules.trigger_rules SET {assignments}, updated_at = now(), version = version + 1
                    WHERE id = $1 RETURNING {_COLUMNS}""",
                rule_id,
                *_body_args(body),
            )
            if row is not None:
                await conn.execute(_BUMP)
        if row is None:
            return None
        self._changed()
        return _from_row(row)

    async def delete(self, rule_id: int) -> bool:
        """False when it did not exist. Its firings stay (history)."""
        async with connection(self.pool) as conn, conn.transaction():
            status = await conn.execute("DELETE FROM rules.trigger_rules WHERE id = $1", rule_id)
            deleted = status.endswith(" 1")
            if deleted:
                await conn.execute(_BUMP)
        if deleted:
            self._changed()
        return deleted

    async def get(self, rule_id: int) -> StoredTriggerRule | None:
        async with connection(self.pool) as conn:
            row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM rules.trigger_rules WHERE id = $1", rule_id)
        return None if row is None else _from_row(row)

    async def page(
        self, *, active: bool | None, limit: int, offset: int
    ) -> tuple[list[StoredTriggerRule], int]:
        """Rules in id order (oldest first), optionally only active or inactive ones, and how many in all."""
        where = "" if active is None else " WHERE active = $1"
        args: list[Any] = [] if active is None else [active]
        n = len(args)
        async with connection(self.pool) as conn:
            total = await conn.fetchval(f"SELECT count(*) FROM rules.trigger_rules{where}", *args)
            page = f" ORDER BY id LIMIT ${n + 1} OFFSET ${n + 2}"
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM rules.trigger_rules{where}{page}",
                *args,
                limit,
                offset,
            )
        return [_from_row(r) for r in rows], int(total)

    async def active_rules(self) -> list[StoredTriggerRule]:
        async with connection(self.pool) as conn:
            rows = await conn.fetch(f"SELECT {_COLUMNS} FROM rules.trigger_rules WHERE active ORDER BY id")
        return [_from_row(r) for r in rows]

    async def active_rules_json(self) -> list[tuple[int, dict[str, Any]]]:
        """Every active rule as (rule_id, its JSON shape): what ``RuleSpec.from_json`` takes.

        Raises:
            DatabaseUnavailableError: PostgreSQL cannot be reached.
        """
        return [(rule.rule_id, rule.body().to_json()) for rule in await self.active_rules()]

    async def change_marker(self) -> int:
        """A number that moves on every change to any rule (create, update, delete), on every replica.

        A reader reloads the rules when it differs from the one it read with its last load; read the
        marker before the rules, so a change between the two reads is seen at the next check.
        """
        async with connection(self.pool) as conn:
            generation = await conn.fetchval("SELECT generation FROM rules.trigger_rule_changes")
        return int(generation)


def _body_args(body: TriggerRuleBody) -> tuple[Any, ...]:
    return (
        body.name,
        body.description,
        body.conditions,
        body.time_window_minutes,
        body.threshold,
        list(body.group_by),
        body.max_triggers_per_hour,
        body.cooldown_minutes,
        None if body.absence is None else msgspec.to_builtins(body.absence),
        body.active,
    )


def _from_row(row: asyncpg.Record) -> StoredTriggerRule:
    return msgspec.convert(dict(row), StoredTriggerRule)


class StoredRules:
    """The trigger rules API's rules as the ``rules`` stage's `RuleSource` (one per process).

    `version` is the repository's change marker, so a rule created through any replica's API is
    evaluated by every replica within ``rules.reload_seconds``. A stored rule that no longer compiles
    (the condition language grew stricter) is left out and logged rather than keeping every rule stale.
    """

    def __init__(self, repository: TriggerRuleRepository) -> None:
        self._repository = repository

    async def version(self) -> object:
        return await self._repository.change_marker()

    async def active_rules(self) -> Sequence[RuleSpec]:
        specs: list[RuleSpec] = []
        for rule_id, body in await self._repository.active_rules_json():
            try:
                specs.append(RuleSpec.from_json(rule_id, body))
            except ConditionError as e:
                log.error(
                    "A stored trigger rule does not compile; it is not evaluated.",
                    rule_id=rule_id,
                    error=str(e),
                )
        return specs
