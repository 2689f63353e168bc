"""Fixtures of the runner tests: the subscription tests' local HTTP receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.integration.outbound.conftest import Receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.up()
    yield r
    await r.down()
