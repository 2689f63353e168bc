"""Event ids from a PostgreSQL sequence, taken in blocks so a batch needs at most one round trip."""

from __future__ import annotations

from collections import deque

import asyncpg

# Must equal the INCREMENT BY of events.event_id_block_seq (sql/001_events.sql).
ID_BLOCK_SIZE = 256


class EventIdAllocator:
    """Hands out ids from blocks reserved with one ``nextval`` each; unique across processes.

    Sequences are not transactional, so a block stays reserved even if the batch that took it rolls back:
    ids may have gaps, never repeats. One allocator per process, used by the pipeline writer.
    """

    def __init__(self) -> None:
        self._free: deque[range] = deque()

    async def allocate(self, conn: asyncpg.Connection, count: int) -> list[int]:
        available = sum(len(r) for r in self._free)
        if available < count:
            blocks = -(-(count - available) // ID_BLOCK_SIZE)
            rows = await conn.fetch(
                "SELECT nextval('events.event_id_block_seq') AS start FROM generate_series(1, $1)", blocks
            )
            self._free.extend(range(int(r["start"]), int(r["start"]) + ID_BLOCK_SIZE) for r in rows)
        ids: list[int] = []
        while len(ids) < count:
            block = self._free[0]
            take = min(count - len(ids), len(block))
            ids.extend(block[:take])
            if take == len(block):
                self._free.popleft()
            else:
                self._free[0] = block[take:]
        return ids
