"""Migrations: applied once, in order, also when two processes start together."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from opsresponder.store.migrations import load_migrations, migrate


@pytest.fixture
async def empty_database(postgres_server_url: str) -> AsyncIterator[str]:
    name = f"opsresponder_migrate_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(postgres_server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(postgres_server_url)
    yield urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))
    await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    await admin.close()


async def test_two_processes_migrating_together_apply_each_migration_once(empty_database: str) -> None:
    connections = [await asyncpg.connect(empty_database) for _ in range(4)]
    try:
        applied = await asyncio.gather(*(migrate(c) for c in connections))
        versions = [m.version for m in load_migrations()]
        # Exactly one of them applied everything; the others found nothing left to do.
        assert sorted(applied, key=len) == [[], [], [], versions]
        rows = await connections[0].fetch("SELECT version FROM public.opsresponder_migrations ORDER BY 1")
        assert [r["version"] for r in rows] == versions
        assert await migrate(connections[0]) == []
        schemas = {r["nspname"] for r in await connections[0].fetch("SELECT nspname FROM pg_namespace")}
        assert {"events", "rules", "autonomous"} <= schemas
    finally:
        for c in connections:
            await c.close()


def test_migration_files_are_numbered_without_gaps() -> None:
    versions = [m.version for m in load_migrations()]
    assert versions == list(range(1, len(versions) + 1))
