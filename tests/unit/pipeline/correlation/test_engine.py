"""The correlation engine's rules one at a time: who is not correlated, repeats, thresholds, roots, bounds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import msgspec
from structlog.testing import capture_logs

from opsresponder.config import CorrelationConfig
from opsresponder.core.batch import Batch
from opsresponder.core.correlation import CORRELATIONS, NEW_ROOT_CAUSES
from opsresponder.core.event import Event
from opsresponder.core.severity import Severity
from opsresponder.pipeline.correlation import Correlate
from opsresponder.store.errors import StoreError
from tests.correlation_scenarios import T0, Scenario


def _stage(config: CorrelationConfig | None = None) -> tuple[Correlate, list[datetime]]:
    now = [T0]
    return Correlate(config, clock=lambda: now[0]), now


def _run(stage: Correlate, *events: Event) -> Batch:
    batch = Batch(list(events))
    asyncio.run(stage.run(batch))
    return batch


def _event(s: Scenario, host: str, title: str, minutes: float = 0, **kw: Any) -> Event:
    return s.add("x", T0 + timedelta(minutes=minutes), host, title, **kw)


def test_suppressed_and_info_events_open_their_own_group_and_are_not_remembered() -> None:
    stage, _ = _stage()
    s = Scenario()
    silenced = _event(s, "db-1", "disk full")
    silenced.suppressed_reason = "silenced:3"
    info = _event(s, "db-1", "disk full", severity=Severity.INFO)
    real = _event(s, "db-1", "disk full", minutes=1)
    batch = _run(stage, silenced, info, real)
    assert len({silenced.correlation_id, info.correlation_id, real.correlation_id}) == 3
    details = [t.detail for t in batch.trace]
    assert details[0] == "not correlated: suppressed (silenced:3)"
    assert details[1] == "not correlated: severity info is below correlation.min_severity"
    assert details[2] == "opened group"


def test_a_repeat_keeps_the_group_of_the_event_it_repeats() -> None:
    stage, _ = _stage()
    s = Scenario()
    first = _event(s, "db-1", "disk full on /var")
    _run(stage, first)
    again = _event(s, "db-1", "disk full on /var", minutes=1)
    batch = _run(stage, again)
    assert again.correlation_id == first.correlation_id
    assert batch.trace[0].detail.startswith("repeats an event of group")
    assert batch.get(CORRELATIONS) is None


def test_below_the_join_threshold_an_event_opens_its_own_group_and_says_why() -> None:
    strict = msgspec.structs.replace(CorrelationConfig(), join_threshold=0.99)
    stage, _ = _stage(strict)
    s = Scenario()
    a = _event(s, "db-1", "disk full")
    b = _event(s, "db-1", "memory low", minutes=5)
    batch = _run(stage, a, b)
    assert a.correlation_id != b.correlation_id
    assert "< join_threshold 0.99" in batch.trace[1].detail


def test_host_based_links_fade_over_the_lookback() -> None:
    stage, _ = _stage()
    s = Scenario()
    a = _event(s, "db-1", "disk full", tags=())
    near = _event(s, "db-1", "replication lag high", minutes=10, tags=())
    far = _event(s, "db-1", "backup finished with warnings", minutes=69, tags=())
    batch = _run(stage, a, near, far)
    assert near.correlation_id == a.correlation_id
    assert far.correlation_id != a.correlation_id  # 59 minutes after `near`: 0.75 * 0.51 < 0.5
    [link] = batch.get(CORRELATIONS) or []
    assert link.correlation_type == "host_based" and link.related is a
    assert link.reason == "Events occurred within 1 hour on the same host db-1"
    assert 0.6 < link.score <= 0.75


def test_an_event_is_known_by_its_id_only_once_its_batch_committed() -> None:
    # A transaction that fails takes back the ids it gave (an outage): the state must not keep one.
    stage, _ = _stage()
    s = Scenario()
    first = _event(s, "db-1", "disk full", service="pg", tags=())
    first_batch = _run(stage, first)
    first.id = 41  # in its transaction, which then fails...
    second = _event(s, "db-2", "replication lag high", minutes=1, service="pg", tags=())
    [link] = _run(stage, second).get(CORRELATIONS) or []
    assert link.related is first  # ...so a later batch links the event, not the id
    first.id = 57  # stored again after the outage
    first_batch.settled = True
    third = _event(s, "db-1", "backup failed", minutes=2, tags=())
    [link] = _run(stage, third).get(CORRELATIONS) or []
    assert link.correlation_type == "host_based" and link.related == 57


def test_a_note_a_later_batch_took_over_waits_for_that_batch() -> None:
    # Notes are shared: the host's note of the group now holds the second event, whose batch is still in
    # its transaction when the first one's settles.
    stage, _ = _stage()
    s = Scenario()
    first = _event(s, "db-1", "disk full", tags=())
    first_batch = _run(stage, first)
    second = _event(s, "db-1", "replication lag high", minutes=1, tags=())
    second_batch = _run(stage, second)  # held, as the worker holds a batch until it is done with it
    first.id, second.id = 10, 99
    first_batch.settled = True
    third = _event(s, "db-1", "backup failed", minutes=2, tags=())
    links = _run(stage, third).get(CORRELATIONS) or []
    assert links and all(link.related is second for link in links)
    assert not second_batch.settled


def test_a_root_whose_batch_is_not_settled_is_held_as_its_event() -> None:
    stage, _ = _stage()
    s = Scenario()
    switch = _event(s, "sw-access-4", "linkDown Gi0/4", group="rack-4")
    switch_batch = _run(stage, switch)  # held: its transaction may yet fail
    switch.id = 5
    host = _event(s, "app-1", "connection refused", minutes=1, group="rack-4x", depends_on=("sw-access-4",))
    batch = _run(stage, host)
    assert host.correlation_id == switch.correlation_id and host.correlation_id is not None
    assert stage.engine.groups()[host.correlation_id].root is switch
    assert batch.get(NEW_ROOT_CAUSES) == [switch]  # the writer takes its id, if it has one by then
    assert "event 5" not in batch.trace[-1].detail and not switch_batch.settled


def test_a_batch_the_worker_let_go_of_counts_as_settled() -> None:
    # The worker holds a batch until it is done storing it: one nobody holds is stored or never will be.
    stage, _ = _stage()
    s = Scenario()
    first = _event(s, "db-1", "disk full", tags=())
    _run(stage, first)  # not held
    first.id = 10
    [link] = _run(stage, _event(s, "db-1", "backup failed", minutes=1, tags=())).get(CORRELATIONS) or []
    assert link.related == 10


def test_a_chain_of_dependencies_moves_the_root_up() -> None:
    stage, _ = _stage()
    s = Scenario()
    access = _event(s, "sw-access-4", "linkDown Gi0/4", group="rack-4", depends_on=("sw-core-1",))
    host = _event(s, "app-1", "connection refused", minutes=1, group="rack-4x", depends_on=("sw-access-4",))
    core = _event(s, "sw-core-1", "linkDown Te1/1", minutes=2, group="core")
    _run(stage, access, host, core)
    assert access.correlation_id == host.correlation_id == core.correlation_id
    assert core.correlation_id is not None
    group = stage.engine.groups()[core.correlation_id]
    assert group.root is core
    assert core.metadata["correlation"]["root_cause"] is True
    assert access.metadata["correlation"]["root_cause"] is True  # named first; the flag stays


def test_the_state_is_bounded_and_forgets_by_time() -> None:
    small = msgspec.structs.replace(CorrelationConfig(), max_keys=10, max_fingerprints=10)
    stage, now = _stage(small)
    s = Scenario()
    events = [_event(s, f"h{n}", f"error {n} x", group=f"g{n}", tags=()) for n in range(30)]
    _run(stage, *events)
    sizes = stage.engine.remembered()
    assert sizes["hosts"] == 10 and sizes["asset_groups"] == 10 and sizes["fingerprints"] == 10
    now[0] = T0 + timedelta(hours=2)
    _run(stage, _event(s, "other", "late", minutes=120, tags=()))
    assert stage.engine.remembered()["hosts"] == 1  # everything older than the lookback is gone


class _BrokenHistory:
    async def recent_events(self, since: datetime) -> AsyncIterator[Sequence[Event]]:
        raise StoreError("the database refused the query")
        yield []


def test_an_unreadable_history_leaves_the_state_empty_and_the_batch_goes_on() -> None:
    stage = Correlate(history=_BrokenHistory(), clock=lambda: T0)
    s = Scenario()
    event = _event(s, "db-1", "disk full")
    with capture_logs() as logs:
        batch = _run(stage, event)
    assert event.correlation_id is not None and batch.trace[0].detail == "opened group"
    assert any("could not be rebuilt" in entry["event"] for entry in logs)
