"""Shared fixtures: real services, and a loop that fails the test on exceptions nobody observed."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import pytest

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


class _StrictLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """Every test loop records exceptions that no task or future observed."""

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        loop = super().new_event_loop()
        loop.set_exception_handler(lambda _loop, context: _unobserved.append(context))
        return loop


@pytest.fixture(scope="session")
def event_loop_policy() -> asyncio.AbstractEventLoopPolicy:
    return _StrictLoopPolicy()


@pytest.fixture(autouse=True)
def _fail_on_unobserved_loop_exceptions() -> Iterator[None]:
    """Like asyncpg's test base: an exception the loop saw but nobody awaited fails the test."""
    _unobserved.clear()
    yield
    if _unobserved:
        seen = list(_unobserved)
        _unobserved.clear()
        pytest.fail(f"the event loop saw exceptions nobody observed: {seen!r}")
