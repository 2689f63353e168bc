"""Silences (maintenance windows) in ``events.silences``: the API's CRUD and the noise stage's reads.

The repository is also the noise stage's `SilenceSource`: every change through it moves ``generation``,
so this process's stage reloads before its next batch; other replicas see a change within
``noise.silence_refresh_seconds``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import asyncpg
import msgspec

from opsresponder.core.silence import Silence, SilenceSpec
from opsresponder.store.pool import connection

_COLUMNS: Final = "id, matchers, windows, starts_at, ends_at, created_by, comment, created_at, updated_at"


class SilenceRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._generation = 0

    @property
    def generation(self) -> int:
        """Moves on every change made through this repository."""
        return self._generation

    async def create(self, spec: SilenceSpec, created_by: str) -> Silence:
        """Raises `DatabaseUnavailableError` when PostgreSQL cannot be reached."""
        async with connection(self.pool) as conn:
            row = await conn.fetchrow(
                f"""INSERT INTO events.silences (matchers, windows, starts_at, ends_at, comment, created_by)
                    VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_COLUMNS}""",
                *_spec_args(spec),
                created_by,
            )
        self._generation += 1
        assert row is not None
        return _from_row(row)

    async def update(self, silence_id: int, spec: SilenceSpec) -> Silence | None:
        """Replace a silence's definition (``created_by`` stays); None when it does not exist."""
        async with connection(self.pool) as conn:
            row = await conn.fetchrow(
                f"""UPDATE events.silences SET matchers = $2, windows = $3, starts_at = $4, ends_at = $5,
                        comment = $6, updated_at = now()
                    WHERE id = $1 RETURNING {_COLUMNS}""",
                silence_id,
                *_spec_args(spec),
            )
        self._generation += 1
        return None if row is None else _from_row(row)

    async def delete(self, silence_id: int) -> bool:
        """False when it did not exist."""
        async with connection(self.pool) as conn:
            status = await conn.execute("DELETE FROM events.silences WHERE id = $1", silence_id)
        self._generation += 1
        return status.endswith(" 1")

    async def get(self, silence_id: int) -> Silence | None:
        async with connection(self.pool) as conn:
            row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM events.silences WHERE id = $1", silence_id)
        return None if row is None else _from_row(row)

    async def list_all(self) -> list[Silence]:
        async with connection(self.pool) as conn:
            rows = await conn.fetch(f"SELECT {_COLUMNS} FROM events.silences ORDER BY id")
        return [_from_row(r) for r in rows]

    async def load_current(self, now: datetime) -> list[Silence]:
        """Every silence not ended at `now`, future ones included (they start between reloads).

        Raises:
            DatabaseUnavailableError: PostgreSQL cannot be reached.
        """
        async with connection(self.pool) as conn:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM events.silences WHERE ends_at IS NULL OR ends_at > $1 ORDER BY id",
                now,
            )
        return [_from_row(r) for r in rows]


def _spec_args(spec: SilenceSpec) -> tuple[Any, ...]:
    return (
        msgspec.to_builtins(spec.matchers),
        msgspec.to_builtins(spec.windows),
        spec.starts_at,
        spec.ends_at,
        spec.comment,
    )


def _from_row(row: asyncpg.Record) -> Silence:
    # matchers and windows arrive as JSON lists (the pool's jsonb codec); convert builds their structs.
    return msgspec.convert(dict(row), Silence)
