"""Batch writers: what else a batch writes in the transaction that stores its events.

The subscription outbox is the first (`store.subscriptions.SubscriptionOutbox`); correlations, traces and
firings join the same way, so that an event and everything it caused commit, or roll back, together.
The composition root gives the writers to `store.events.EventRepository`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import asyncpg

from opsresponder.core.batch import Batch
from opsresponder.core.event import Event


class BatchWriter(Protocol):
    """Adds rows in a batch's transaction, after its new events went in.

    `write` is awaited once per transaction (also for a batch of only duplicates, with `stored` empty), in
    the order the writers were given. It runs on the batch's connection inside its transaction, so it
    must send its rows in one or a few statements for the whole batch, never one per event, and nothing
    when it has nothing to write: every statement is a round trip while the batch holds its row locks.

    - `batch`: everything the stages added (`Batch.trace`, additions by `BatchKey`), for all of the
      batch's events. When the database refused the batch, the store retries it one event at a time, each
      in its own transaction with the same `batch`: write what belongs to `stored`, nothing else.
    - `stored`: the events of this transaction that became new rows, in batch order, with their ids.
      Duplicates were folded into existing rows and are not in it; `Batch.transaction_events` has all of
      this transaction's events, duplicates included (`store.patterns.PatternWriter` counts those).

    Raising (asyncpg's errors included) rolls the whole transaction back, events and all.
    """

    async def write(self, conn: asyncpg.Connection, batch: Batch, stored: Sequence[Event]) -> None: ...
