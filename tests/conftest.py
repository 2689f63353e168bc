"""Shared fixtures: real services, and a loop that fails the test on exceptions nobody observed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import hypothesis
import pytest
from asyncpg.pool import PoolConnectionProxy

from opsresponder.store.embedded import EmbeddedPostgres
from opsresponder.store.migrations import migrate
from opsresponder.store.pool import create_pool

# Hypothesis fails an example that takes over 200 ms by default: a timing assertion, which a loaded 2-core
# machine can break. Benchmarks judge speed; property tests judge behaviour only.
hypothesis.settings.register_profile("opsresponder", deadline=None)
hypothesis.settings.load_profile("opsresponder")

REQUIRE_SERVICES = os.environ.get("OPSRESPONDER_REQUIRE_SERVICES") == "1"


def service_url(variable: str, what: str) -> str:
    """The URL of a real service for tests, or skip; with OPSRESPONDER_REQUIRE_SERVICES=1, fail instead.

    CI sets OPSRESPONDER_REQUIRE_SERVICES=1 so that a missing service can never pass as a skip.
    """
    url = os.environ.get(variable)
    if url:
        return url
    message = f"{what} is not configured: set {variable}"
    if REQUIRE_SERVICES:
        pytest.fail(message + " (OPSRESPONDER_REQUIRE_SERVICES=1 forbids skipping)", pytrace=False)
    pytest.skip(message)


_unobserved: list[dict[str, Any]] = []


def strict_loop() -> asyncio.AbstractEventLoop:
    """A loop that records exceptions no task or future observed, so the test can fail on them."""
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(lambda _loop, context: _unobserved.append(context))
    return loop


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    return {"asyncio": strict_loop}


@pytest.fixture(autouse=True)
def _fail_on_unobserved_loop_exceptions() -> Iterator[None]:
    """Like asyncpg's test base: an exception the loop saw but nobody awaited fails the test."""
    _unobserved.clear()
    yield
    if _unobserved:
        seen = list(_unobserved)
        _unobserved.clear()
        pytest.fail(f"the event loop saw exceptions nobody observed: {seen!r}")


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """The test PostgreSQL server: OPSRESPONDER_TEST_DATABASE_URL, else an embedded one for this session.

    With OPSRESPONDER_REQUIRE_SERVICES=1 (CI) the variable must be set: CI tests the machine's server.
    """
    url = os.environ.get("OPSRESPONDER_TEST_DATABASE_URL")
    if url:
        yield url
        return
    if REQUIRE_SERVICES:
        pytest.fail(
            "OPSRESPONDER_TEST_DATABASE_URL is not set and OPSRESPONDER_REQUIRE_SERVICES=1", pytrace=False
        )
    with outside_pytest_tmp("opsresponder-test-pg-") as data_dir:
        embedded = EmbeddedPostgres(data_dir)
        yield embedded.start()
        embedded.stop()


@pytest.fixture(scope="session")
def database_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh, migrated database on the test PostgreSQL for this test session; dropped afterwards."""
    server_url = postgres_server_url
    name = f"opsresponder_test_{uuid.uuid4().hex[:12]}"
    url = _with_database(server_url, name)

    async def create() -> None:
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
        finally:
            await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(create())
    yield url
    asyncio.run(drop())


@pytest.fixture
async def db_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the session database, with every table of ours emptied before the test."""
    pool = await create_pool(database_url, min_size=1, max_size=4, connect_timeout=5, command_timeout=30)
    async with pool.acquire() as conn:
        await empty_tables(conn)
    yield pool
    await pool.close()


# The stored correlations one row per (event, related event, kind), as the API reads them: what
# events.event_correlations holds per event (migration 018).
CORRELATION_ROWS = """(
    SELECT c.event_id, u.related_event_id, c.links -> (u.n::int - 1) ->> 0 AS correlation_type,
           (c.links -> (u.n::int - 1) ->> 1)::float8 AS score, c.links -> (u.n::int - 1) ->> 2 AS reason,
           c.correlation_id, c.created_at
    FROM events.event_correlations AS c, unnest(c.related) WITH ORDINALITY AS u(related_event_id, n)
)"""


async def empty_tables(conn: asyncpg.Connection | PoolConnectionProxy) -> None:
    """Empty every table of ours."""
    await conn.execute(
        "TRUNCATE events.events, events.dedup, events.subscriptions, events.subscription_outbox, "
        "events.silences, events.event_traces, public.opsresponder_jobs, events.patterns, "
        "events.event_correlations, rules.trigger_rules, rules.rule_firings, rules.response_templates, "
        "autonomous.decisions, autonomous.decision_actions, autonomous.action_outcomes, "
        "autonomous.executions, autonomous.execution_actions, autonomous.execution_logs, "
        "autonomous.automation_pause, autonomous.automation_pause_log, autonomous.approvals, "
        "autonomous.verifications, autonomous.feedback, autonomous.execution_scores, "
        "autonomous.action_policies, autonomous.action_policy_changes, autonomous.firing_responses"
    )


def _with_database(url: str, name: str) -> str:
    """`url` on database `name`; without an sslmode of its own, ``sslmode=disable``: asyncpg's default
    (prefer) negotiates TLS on every connect, and a connect cancelled mid-negotiation (a pool closing at
    a service's stop while it grows) leaves a future whose exception nobody reads, which the strict loop
    reports. The services under test are the same either way."""
    parts = urlsplit(url)
    query = (
        parts.query
        if "sslmode=" in parts.query
        else "&".join(q for q in (parts.query, "sslmode=disable") if q)
    )
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", query, parts.fragment))


@contextlib.contextmanager
def outside_pytest_tmp(prefix: str) -> Iterator[Path]:
    """A temporary directory for the embedded PostgreSQL, which runs as its own system user when we are root.

    Not under pytest's tmp_path: pytest makes its root private (0700) whenever another pytest session
    starts on the machine, which would lock that user out of its data directory mid-test.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def service_data_dir() -> Iterator[Path]:
    """A data_dir for a service that starts the embedded PostgreSQL (see `outside_pytest_tmp`)."""
    with outside_pytest_tmp("opsresponder-test-") as path:
        yield path


def require_program(program: str, debian_package: str) -> str:
    """The path of a real client program (logger, loggen, snmptrap...), or skip; in CI, fail instead."""
    path = shutil.which(program)
    if path:
        return path
    message = f"{program} is not installed (Debian package {debian_package})"
    if REQUIRE_SERVICES:
        pytest.fail(message + " (OPSRESPONDER_REQUIRE_SERVICES=1 forbids skipping)", pytrace=False)
    pytest.skip(message)
