"""Errors of the store package; asyncpg and OS errors are wrapped into these at the boundary."""

from __future__ import annotations

from opsresponder.core.errors import OpsResponderError


class StoreError(OpsResponderError):
    """Root of storage errors."""


class DatabaseUnavailableError(StoreError):
    """The database cannot be reached or lost the connection; the operation may be retried later."""


class CommitOutcomeUnknownError(DatabaseUnavailableError):
    """The connection was lost while the database was committing: the transaction may or may not have
    committed. Handled as an outage (the events are not known to be stored), but what would be wrong to
    undo if they were (the rules' cooldowns of firings it held) is left standing."""


class EarlierBatchWithdrawnError(StoreError):
    """An earlier batch failed to commit after this one could read its events' ids (see
    `store.write_order`); nothing was stored. Store this batch again after that one."""


class EmbeddedPostgresError(StoreError):
    """The embedded PostgreSQL server could not be prepared or started."""


class MigrationError(StoreError):
    """A migration file is invalid or failed to apply."""
