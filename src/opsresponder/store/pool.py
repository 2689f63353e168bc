"""The asyncpg pool, with msgspec JSON codecs for json/jsonb registered once per connection."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import msgspec

from opsresponder.store.errors import DatabaseUnavailableError

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()

# Errors that mean "the server is gone or restarting", as opposed to a bug in a query. Any of them is
# answered by waiting and retrying, never by dropping data.
CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.InterfaceError,
)


# At start, a refusal by the server (bad password, missing database) is as fatal as no server at all.
_START_ERRORS: tuple[type[Exception], ...] = (*CONNECTION_ERRORS, asyncpg.PostgresError)


# jsonb's binary wire format is a version byte (1) followed by the JSON text; binary lets COPY carry it.
_JSONB_VERSION = b"\x01"


def _encode_jsonb(value: Any) -> bytes:
    return _JSONB_VERSION + _encoder.encode(value)


def _decode_jsonb(data: bytes) -> Any:
    return _decoder.decode(data[1:])


def _encode_json(value: Any) -> str:
    return _encoder.encode(value).decode()


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb", schema="pg_catalog", encoder=_encode_jsonb, decoder=_decode_jsonb, format="binary"
    )
    await conn.set_type_codec(
        "json", schema="pg_catalog", encoder=_encode_json, decoder=_decoder.decode, format="text"
    )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release a connection to the pool as it is.

    asyncpg's default sends ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` on every
    release: one more round trip per batch written and per API query. Our code leaves no session state
    behind (no SET, LISTEN or open cursor; the migration lock is released explicitly), and asyncpg still
    rolls back a transaction left open before calling this.
    """
    del conn


async def create_pool(
    dsn: str, *, min_size: int, max_size: int, connect_timeout: float, command_timeout: float
) -> asyncpg.Pool:
    """Open a pool; the first connection is made here so a bad DSN fails the start.

    Raises:
        DatabaseUnavailableError: the server cannot be reached or refused the connection.
    """
    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            timeout=connect_timeout,
            command_timeout=command_timeout,
            init=_init_connection,
            reset=_keep_session,
            server_settings={
                "application_name": "opsresponder",
                # asyncpg prepares every statement, and after five runs PostgreSQL may switch to a generic
                # plan that it keeps until the next ANALYZE. On a new database that plan was made for
                # empty tables: the duplicate update kept scanning all of events.events until autovacuum
                # first analyzed it, and ingest slowed as the table grew. A custom plan costs well under a
                # millisecond per statement; our statements run once per batch or request.
                "plan_cache_mode": "force_custom_plan",
            },
        )
    except _START_ERRORS as e:
        raise DatabaseUnavailableError(f"cannot connect to PostgreSQL: {e}") from e
    return pool


@contextlib.asynccontextmanager
async def connection(pool: asyncpg.Pool, timeout: float | None = None) -> AsyncIterator[asyncpg.Connection]:
    """Acquire a connection, turning connection-level failures into `DatabaseUnavailableError`."""
    try:
        async with pool.acquire(timeout=timeout) as conn:
            yield conn  # type: ignore[misc]  # the pool's proxy behaves as a Connection
    except CONNECTION_ERRORS as e:
        raise DatabaseUnavailableError(f"PostgreSQL is unavailable: {e.__class__.__name__}: {e}") from e


Connection = asyncpg.Connection
"""A connection another store call runs on, to share its transaction (see `transaction`)."""


@contextlib.asynccontextmanager
async def transaction(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection in a transaction: store calls given it (``conn=``) commit or roll back together."""
    async with connection(pool) as conn, conn.transaction():
        yield conn


@contextlib.asynccontextmanager
async def using(pool: asyncpg.Pool, conn: asyncpg.Connection | None) -> AsyncIterator[asyncpg.Connection]:
    """`conn` when given (the caller's transaction), else a connection of `pool`."""
    if conn is not None:
        yield conn
        return
    async with connection(pool) as own:
        yield own
