"""The order of overlapping batch transactions: they take locks, commit and publish in the order they began.

The pipeline keeps more than one batch transaction open at a time, so that a batch's round trips to
PostgreSQL overlap with the next batch's. Three things must still happen in batch order:

1. Taking ids and every row lock: the dedup rows, and the rows the batch writers upsert (the lock phase
   ends once the batch has written everything, commit excepted). Ids then grow with batch order, and a
   batch never waits in PostgreSQL for a row lock held by a later batch, which is waiting (here, where
   PostgreSQL's deadlock detector cannot see it) for the earlier batch to commit.
2. Committing. Ids then grow in commit order within a process, which is what makes the live stream's
   resume cursor exact (docs/stream.md).
3. Publishing: answering the callers and telling the commit listeners, so the stream sends events in id
   order.

Each batch holds a `WriteTurn`. A turn's phase counts as over only once the previous turn's phase is over
too, whatever happened to the batch (failed, cancelled), so one failure never lets a later batch overtake
an earlier one, and never stalls the chain either.

A later batch's writers run once the earlier batch has written everything, and so may read its new ids
(a correlation with one of its events, a firing that counted one). Should the earlier batch then fail to
commit, its ids were never stored: it ends its commit phase "withdrawn", and the later batch, told so by
`wait_to_commit`, must not commit what it wrote either. Only a batch whose writing overlapped the
earlier one's pending commit is told (one that began after it was over read final ids, or none), and a
batch that wrote nothing passes the withdrawal on to the next, so a withdrawal reaches exactly the
batches that may have read the ids it took back.
"""

from __future__ import annotations

import asyncio
from typing import TypeVar

T = TypeVar("T")


class WriteTurn:
    """One batch's place in the order; take it with `WriteOrder.next_turn`.

    The owner must call `end_lock_phase`, `end_commit_phase` and `end_publish_phase` on every path (they are
    idempotent, and each ends the earlier phases too); `WriteOrder` relies on it to keep the chain moving.
    """

    __slots__ = ("_committed", "_locked", "_overlapped", "_previous", "_published")

    def __init__(self, previous: WriteTurn | None) -> None:
        loop = asyncio.get_running_loop()
        self._locked: asyncio.Future[None] = loop.create_future()
        self._committed: asyncio.Future[bool] = loop.create_future()  # the result: withdrawn
        self._published: asyncio.Future[None] = loop.create_future()
        self._previous: tuple[asyncio.Future[None], asyncio.Future[bool], asyncio.Future[None]] | None = (
            None if previous is None else (previous._locked, previous._committed, previous._published)
        )
        # Whether this batch writes while the previous one's commit is pending (it may read its ids).
        self._overlapped = False

    async def wait_to_lock(self) -> None:
        """Until the previous batch has taken its ids and locks (or failed)."""
        if self._previous is not None:
            await _wait(self._previous[0])
            self._overlapped = not self._previous[1].done()

    async def wait_to_commit(self) -> bool:
        """Until the previous batch has committed (or rolled back). Whether this batch must not commit: an
        earlier batch withdrew (see `end_commit_phase`) while this one was writing, so this one may name
        events whose ids were taken back."""
        if self._previous is None:
            return False
        withdrawn = await _wait(self._previous[1])
        return withdrawn and self._overlapped

    async def wait_to_publish(self) -> None:
        """Until the previous batch has answered its callers and told the commit listeners."""
        if self._previous is not None:
            await _wait(self._previous[2])

    def end_lock_phase(self) -> None:
        _follow(self._previous[0] if self._previous else None, self._locked)

    def end_commit_phase(self, *, withdrawn: bool | None = None) -> None:
        """`withdrawn`: True when the batch did not commit although its lock phase had ended, so later
        batches may have read ids of its events that are now taken back; False when it committed; None
        (it wrote nothing) passes on what the previous batch said."""
        self.end_lock_phase()
        _follow_commit(self._previous[1] if self._previous else None, self._committed, withdrawn)

    def end_publish_phase(self) -> None:
        self.end_commit_phase()
        _follow(self._previous[2] if self._previous else None, self._published)
        self._previous = None  # the chain behind is over: let it be freed

    @property
    def published(self) -> bool:
        return self._published.done()


class WriteOrder:
    """Hands out turns in the order batches begin. One per writer (the pipeline worker)."""

    def __init__(self) -> None:
        self._last: WriteTurn | None = None

    def next_turn(self) -> WriteTurn:
        turn = WriteTurn(self._last)
        self._last = turn
        return turn


def _follow_commit(
    previous: asyncio.Future[bool] | None, mine: asyncio.Future[bool], withdrawn: bool | None
) -> None:
    """Complete `mine` once `previous` is done: with `withdrawn`, or (None) with what `previous` says."""
    if mine.done():
        return

    def complete(_: object = None) -> None:
        if not mine.done():
            passed_on = previous is not None and previous.result()
            mine.set_result(passed_on if withdrawn is None else withdrawn)

    if previous is None or previous.done():
        complete()
    else:
        previous.add_done_callback(complete)


async def _wait(future: asyncio.Future[T]) -> T:
    # Never cancel the shared future itself when the waiter is cancelled: other turns wait on it too.
    return await asyncio.shield(future)


def _follow(previous: asyncio.Future[None] | None, mine: asyncio.Future[None]) -> None:
    """Complete `mine` now if `previous` is done, else as soon as it is."""
    if mine.done():
        return
    if previous is None or previous.done():
        mine.set_result(None)
        return

    def complete(_: asyncio.Future[None]) -> None:
        if not mine.done():
            mine.set_result(None)

    previous.add_done_callback(complete)
