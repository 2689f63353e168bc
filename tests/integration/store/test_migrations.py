"""Migrations: applied once, in order, also when two processes start together."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from opsresponder.store.approvals import ApprovalRepository
from opsresponder.store.migrations import load_migrations, migrate
from opsresponder.store.pool import create_pool


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


_OLD_APPROVAL: Final = """
INSERT INTO autonomous.approvals (execution_id, plan_hash, status, requested_by, approvers, risk_level,
    business_impact, reason, actions, created_at, expires_at, decided_by, decided_at)
VALUES ($1, 'h', $2, 'rules', '{}', 'low', 'low', 'r', '[]', $3::timestamptz,
        $3::timestamptz + interval '30 minutes', $4, $5)
"""


async def test_approvals_older_than_migration_19_are_not_announced_again(empty_database: str) -> None:
    migrations = load_migrations()
    conn = await asyncpg.connect(empty_database)
    try:
        for migration in (m for m in migrations if m.version < 19):
            await conn.execute(migration.sql)
        now = datetime.now(UTC)
        await conn.execute(_OLD_APPROVAL, 1, "pending", now, None, None)
        await conn.execute(_OLD_APPROVAL, 2, "expired", now - timedelta(hours=1), "expiry", now)
        [notifications] = [m for m in migrations if m.version == 19]
        await conn.execute(notifications.sql)
        rows = await conn.fetch("SELECT notified_at, created_at, decided_at FROM autonomous.approvals")
        assert [r["notified_at"] for r in rows] == [r["decided_at"] or r["created_at"] for r in rows]
    finally:
        await conn.close()
    pool = await create_pool(empty_database, min_size=1, max_size=1, connect_timeout=5, command_timeout=30)
    try:
        later = now + timedelta(days=1)
        assert (
            await ApprovalRepository(pool).take_unnotified(later, timedelta(0), timedelta(minutes=1), 10)
            == []
        )
    finally:
        await pool.close()


async def test_018_folds_the_stored_correlations_into_a_row_per_event(empty_database: str) -> None:
    conn = await asyncpg.connect(empty_database)
    try:
        # A database as release 017 left it, with correlations stored one row per link.
        await conn.execute(
            """CREATE TABLE public.opsresponder_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        for m in load_migrations():
            if m.version < 18:
                await conn.execute(m.sql)
                await conn.execute(
                    "INSERT INTO public.opsresponder_migrations (version, name) VALUES ($1, $2)",
                    m.version,
                    m.name,
                )
        group = uuid.uuid4()
        await conn.executemany(
            "INSERT INTO events.events (id, source, source_type, event_type, severity, state, title, "
            "occurred_at, received_at, processed_at, last_seen_at, fingerprint, correlation_id) "
            "VALUES ($1, 's', 'custom', 't', 'high', 'problem', 'x', now(), now(), now(), now(), $2, $3)",
            [(i, f"f{i}", group) for i in (1, 2, 3)],
        )
        await conn.executemany(
            "INSERT INTO events.correlations "
            "(correlation_id, event_id, related_event_id, correlation_type, score, reason) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            [
                (group, 2, 1, "causal", 0.9, "b depends on a"),
                (group, 3, 1, "causal", 0.8, "c depends on a"),
                (group, 2, 1, "time_based", 0.4, "b near a"),
                (group, 3, 2, "host_based", 0.7, "c with b"),
                (group, 9, 1, "causal", 0.9, "an event retention deleted already"),
            ],
        )

        assert await migrate(conn) == [m.version for m in load_migrations() if m.version >= 18]
        rows = await conn.fetch(
            "SELECT event_id, correlation_id, related, links FROM events.event_correlations ORDER BY event_id"
        )
        # A plain connection: jsonb as text.
        assert [(r["event_id"], r["related"], json.loads(r["links"])) for r in rows] == [
            (2, [1, 1], [["causal", 0.9, "b depends on a"], ["time_based", 0.4, "b near a"]]),
            (3, [1, 2], [["causal", 0.8, "c depends on a"], ["host_based", 0.7, "c with b"]]),
        ]
        assert {r["correlation_id"] for r in rows} == {group}
        # Kept for a replica of the previous release still writing there; no longer read.
        assert await conn.fetchval("SELECT count(*) FROM events.correlations") == 5
    finally:
        await conn.close()
