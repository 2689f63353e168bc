"""WriteOrder: overlapping batches take locks, commit and publish in the order they began, whatever fails."""

from __future__ import annotations

import asyncio

import pytest

from opsresponder.store.write_order import WriteOrder, WriteTurn


async def run_batch(turn: WriteTurn, name: str, log: list[str], *, delay: float = 0.0) -> None:
    """A batch as store_batch and the worker run it, recording when each ordered step happens."""
    try:
        await turn.wait_to_lock()
        log.append(f"lock {name}")
        turn.end_lock_phase()
        await asyncio.sleep(delay)  # the rest of its statements
        await turn.wait_to_commit()
        log.append(f"commit {name}")
        turn.end_commit_phase()
        await turn.wait_to_publish()
        log.append(f"publish {name}")
    finally:
        turn.end_publish_phase()


async def test_a_faster_later_batch_still_commits_and_publishes_after_the_earlier_one() -> None:
    order = WriteOrder()
    log: list[str] = []
    first, second = order.next_turn(), order.next_turn()
    await asyncio.gather(
        run_batch(first, "a", log, delay=0.05),
        run_batch(second, "b", log, delay=0.0),
    )
    # b's lock phase follows a's; b's commit waits for a's commit despite b being faster.
    assert log.index("lock a") < log.index("lock b")
    assert log.index("commit a") < log.index("commit b")
    assert log.index("publish a") < log.index("publish b")
    assert log.index("lock b") < log.index("commit a")  # the phases overlap: that is the point


async def test_a_failing_batch_lets_the_next_go_on_but_not_before_its_own_predecessor() -> None:
    order = WriteOrder()
    log: list[str] = []
    first, failing, third = order.next_turn(), order.next_turn(), order.next_turn()
    slow_first = asyncio.create_task(run_batch(first, "a", log, delay=0.05))

    async def fail() -> None:
        try:
            await failing.wait_to_lock()
            raise RuntimeError("the database refused the batch")
        finally:
            failing.end_publish_phase()

    with pytest.raises(RuntimeError):
        await fail()
    await asyncio.gather(slow_first, run_batch(third, "c", log))
    assert log.index("commit a") < log.index("commit c")
    assert log.index("publish a") < log.index("publish c")


async def test_cancelling_a_waiter_does_not_cancel_the_shared_phase() -> None:
    order = WriteOrder()
    first, second, third = order.next_turn(), order.next_turn(), order.next_turn()
    waiter = asyncio.create_task(second.wait_to_commit())
    await asyncio.sleep(0)
    waiter.cancel()
    second.end_publish_phase()  # cancelled batches end their phases too
    third_done = asyncio.create_task(third.wait_to_commit())
    await asyncio.sleep(0.01)
    assert not third_done.done()  # the first batch has not committed yet
    first.end_commit_phase()
    await asyncio.wait_for(third_done, 1)
    assert not first.published
    first.end_publish_phase()
    assert first.published


async def test_a_turn_without_a_predecessor_never_waits() -> None:
    turn = WriteOrder().next_turn()
    await asyncio.wait_for(turn.wait_to_lock(), 1)
    await asyncio.wait_for(turn.wait_to_commit(), 1)
    await asyncio.wait_for(turn.wait_to_publish(), 1)


async def test_a_withdrawal_is_told_to_the_batch_that_wrote_while_it_was_pending() -> None:
    order = WriteOrder()
    first, second = order.next_turn(), order.next_turn()
    first.end_lock_phase()  # written: its ids are there to read...
    await second.wait_to_lock()  # ...while the second writes
    first.end_commit_phase(withdrawn=True)  # then its commit failed
    assert await second.wait_to_commit() is True


async def test_a_batch_that_began_after_the_withdrawal_is_not_told() -> None:
    # No livelock: the batch stored again after the one that withdrew, and every later one, commit.
    order = WriteOrder()
    first, second = order.next_turn(), order.next_turn()
    first.end_lock_phase()
    first.end_commit_phase(withdrawn=True)
    await second.wait_to_lock()
    assert await second.wait_to_commit() is False


async def test_a_batch_that_wrote_nothing_passes_a_withdrawal_on() -> None:
    order = WriteOrder()
    first, empty, third = order.next_turn(), order.next_turn(), order.next_turn()
    first.end_lock_phase()
    empty.end_publish_phase()  # a stage failed: it never wrote, and ends every phase at once
    await third.wait_to_lock()
    first.end_commit_phase(withdrawn=True)
    assert await third.wait_to_commit() is True


async def test_a_committed_batch_tells_the_next_nothing_was_withdrawn() -> None:
    order = WriteOrder()
    first, second, third = order.next_turn(), order.next_turn(), order.next_turn()
    first.end_lock_phase()
    await second.wait_to_lock()
    first.end_commit_phase(withdrawn=False)
    second.end_lock_phase()
    await third.wait_to_lock()
    assert await second.wait_to_commit() is False
    second.end_commit_phase(withdrawn=False)
    assert await third.wait_to_commit() is False
