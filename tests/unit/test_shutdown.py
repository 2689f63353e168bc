"""`app.Shutdown`: what started stops once, in STOP_ORDER, even when a stop fails."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from opsresponder.app import STOP_ORDER, Shutdown


async def test_registered_stops_run_in_the_stop_order_once() -> None:
    ran: list[str] = []
    shutdown = Shutdown()
    for part in reversed(STOP_ORDER):  # registered in the opposite order on purpose

        async def stop(part: str = part) -> None:
            ran.append(part)

        shutdown.on_stop(part, stop)
    await shutdown.run()
    await shutdown.run()  # a second run (the `finally` after a normal shutdown) stops nothing again
    assert ran == list(STOP_ORDER)


async def test_a_failing_stop_is_logged_and_the_others_still_run() -> None:
    ran: list[str] = []

    async def broken() -> None:
        raise RuntimeError("boom")

    async def worker() -> None:
        ran.append("worker")

    shutdown = Shutdown()
    shutdown.on_stop("worker", worker)
    shutdown.on_stop("ingest", broken)
    with capture_logs() as logs:
        await shutdown.run()
    assert ran == ["worker"]
    assert any(r["log_level"] == "error" and r.get("part") == "ingest" for r in logs)


def test_an_unknown_part_is_refused() -> None:
    with pytest.raises(ValueError, match="stop order"):
        Shutdown().on_stop("nonsense", worker_stop)


async def worker_stop() -> None:
    return None


def test_executions_stop_after_the_http_servers_and_before_their_clients_close() -> None:
    order = list(STOP_ORDER)
    # No request can submit, cancel or roll back once http has stopped; the executor still records its
    # interrupted runs (the pool closes after every part), and its notifications and HTTP calls still have
    # their clients.
    assert order.index("http") < order.index("executions") < order.index("response_clients")
    assert order.index("executions") < order.index("deliveries")
