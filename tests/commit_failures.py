"""A commit PostgreSQL itself refuses: a deferred constraint, checked at COMMIT, after every statement of
the transaction (and so after the next overlapping batch could read its ids); and a connection lost at
COMMIT (a deferred trigger that ends its own backend), whose outcome the client cannot know."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import asyncpg
import pytest

from opsresponder.core.batch import Batch
from opsresponder.core.event import Event


@pytest.fixture
async def deferred_check(db_pool: asyncpg.Pool) -> AsyncIterator[None]:
    await db_pool.execute(
        """CREATE TABLE public.commit_test_parent (x int PRIMARY KEY);
           CREATE TABLE public.commit_test_child (x int REFERENCES public.commit_test_parent (x)
                                                  DEFERRABLE INITIALLY DEFERRED)"""
    )
    yield
    await db_pool.execute("DROP TABLE public.commit_test_child, public.commit_test_parent")


class FailsAtCommit:
    """A batch writer whose row violates the deferred constraint when the transaction stores an event
    titled `title` (every transaction when None): its COMMIT fails."""

    def __init__(self, title: str | None = None) -> None:
        self._title = title

    async def write(self, conn: asyncpg.Connection, batch: Batch, stored: Sequence[Event]) -> None:
        if self._title is None or any(e.title == self._title for e in stored):
            await conn.execute("INSERT INTO public.commit_test_child (x) VALUES (1)")


@pytest.fixture
async def lost_at_commit(db_pool: asyncpg.Pool) -> AsyncIterator[None]:
    await db_pool.execute(
        """CREATE TABLE public.commit_test_lost (x int);
           CREATE FUNCTION public.commit_test_lose() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
             PERFORM pg_terminate_backend(pg_backend_pid());
             PERFORM pg_sleep(5);  -- the termination interrupts it
             RETURN NULL;
           END $$;
           CREATE CONSTRAINT TRIGGER commit_test_lose AFTER INSERT ON public.commit_test_lost
             DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.commit_test_lose()"""
    )
    yield
    await db_pool.execute("DROP TABLE public.commit_test_lost; DROP FUNCTION public.commit_test_lose()")


class LosesConnectionAtCommit:
    """A batch writer whose row makes the transaction's COMMIT end its own connection."""

    async def write(self, conn: asyncpg.Connection, batch: Batch, stored: Sequence[Event]) -> None:
        await conn.execute("INSERT INTO public.commit_test_lost (x) VALUES (1)")
