"""Ordered SQL migrations (``store/sql/NNN_name.sql``), applied once each, under an advisory lock.

Two processes starting together both call `migrate`; the advisory lock makes the second wait until the
first has applied everything, after which it finds nothing left to do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import asyncpg
import structlog

from opsresponder.store.errors import MigrationError

log = structlog.get_logger(__name__)

# An arbitrary constant shared by every OpsResponder process: "OPSR" in ASCII.
MIGRATION_LOCK_ID = 0x4F505352
_FILE_RE = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """Read the packaged migration files in version order.

    Raises:
        MigrationError: a file name does not follow ``NNN_name.sql`` or two files share a version.
    """
    found: dict[int, Migration] = {}
    for entry in resources.files("opsresponder.store").joinpath("sql").iterdir():
        if not entry.name.endswith(".sql"):
            continue
        m = _FILE_RE.match(entry.name)
        if m is None:
            raise MigrationError(f"migration file {entry.name} is not named NNN_name.sql")
        version = int(m.group(1))
        if version in found:
            raise MigrationError(f"two migration files have version {version}")
        found[version] = Migration(version, m.group(2), entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


async def migrate(conn: asyncpg.Connection) -> list[int]:
    """Apply every migration not yet recorded; return the versions applied now.

    Raises:
        MigrationError: a migration failed; its transaction was rolled back.
    """
    applied_now: list[int] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS public.opsresponder_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM public.opsresponder_migrations")}
        for migration in load_migrations():
            if migration.version in done:
                continue
            try:
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO public.opsresponder_migrations (version, name) VALUES ($1, $2)",
                        migration.version,
                        migration.name,
                    )
            except asyncpg.PostgresError as e:
                raise MigrationError(
                    f"migration {migration.version:03d}_{migration.name} failed: {e.__class__.__name__}: {e}"
                ) from e
            applied_now.append(migration.version)
            log.info("Applied a database migration.", version=migration.version, name=migration.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
    return applied_now
