"""The noise stage over whole batches: silences from its source, flapping, trace and metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from opsresponder.config import FlappingConfig, NoiseConfig, RateLimitConfig
from opsresponder.core.batch import Batch
from opsresponder.core.errors import OpsResponderError
from opsresponder.core.event import Event, EventState
from opsresponder.core.silence import Silence, SilenceMatcher
from opsresponder.pipeline.noise import Noise
from opsresponder.pipeline.noise.metrics import NoiseMetrics
from tests.factories import make_event

T0 = datetime(2030, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class Source:
    def __init__(self, *silences: Silence) -> None:
        self.silences = list(silences)
        self.generation = 0
        self.loads = 0
        self.down = False

    async def load_current(self, now: datetime) -> list[Silence]:
        self.loads += 1
        if self.down:
            raise OpsResponderError("PostgreSQL is unavailable")
        return [s for s in self.silences if s.ends_at is None or s.ends_at > now]


def db_silence(silence_id: int = 1, ends_at: datetime | None = None) -> Silence:
    return Silence(
        id=silence_id,
        matchers=[SilenceMatcher(field="host", value="db-1")],
        starts_at=T0,
        ends_at=ends_at,
        created_by="ops",
        created_at=T0,
        updated_at=T0,
    )


def suppressed(registry: CollectorRegistry, reason: str) -> float:
    return registry.get_sample_value("opsresponder_events_suppressed_total", {"reason": reason}) or 0.0


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def stage(source: Source, clock: Clock, registry: CollectorRegistry, max_changes: int = 5) -> Noise:
    config = NoiseConfig(
        silence_refresh_seconds=2, flapping=FlappingConfig(max_changes=max_changes, window_minutes=30)
    )
    return Noise(source, config, clock, NoiseMetrics(registry))


def events(*hosts: str) -> list[Event]:
    return [make_event(host=h, fingerprint=f"fp-{h}") for h in hosts]


async def test_a_matching_event_is_marked_traced_and_counted(registry: CollectorRegistry) -> None:
    noise = stage(Source(db_silence(42)), Clock(), registry)
    batch = Batch(events("db-1", "web-1"))
    await noise.run(batch)
    silenced, other = batch.events
    assert silenced.suppressed_reason == "silenced:42"
    assert other.suppressed_reason is None
    assert [(t.event, t.stage, t.detail) for t in batch.trace] == [
        (silenced, "noise", "silenced:42: matched the silence"),
        (other, "noise", "passed: none of 1 active silences matched, not flapping"),
    ]
    assert suppressed(registry, "silenced") == 1
    assert suppressed(registry, "flapping") == 0


async def test_silences_are_read_once_per_refresh_interval_and_at_once_after_a_change(
    registry: CollectorRegistry,
) -> None:
    source, clock = Source(), Clock()
    noise = stage(source, clock, registry)
    await noise.run(Batch(events("db-1")))
    await noise.run(Batch(events("db-1")))
    assert source.loads == 1

    source.silences.append(db_silence())
    source.generation += 1  # what the repository does on every change through the API
    batch = Batch(events("db-1"))
    await noise.run(batch)
    assert source.loads == 2 and batch.events[0].suppressed_reason == "silenced:1"

    clock.now += timedelta(seconds=2)
    await noise.run(Batch(events("db-1")))
    assert source.loads == 3


async def test_an_ended_silence_stops_matching_by_itself(registry: CollectorRegistry) -> None:
    source, clock = Source(db_silence(ends_at=T0 + timedelta(seconds=1))), Clock()
    noise = stage(source, clock, registry)
    await noise.run(Batch(events("db-1")))
    clock.now += timedelta(seconds=1)  # within the refresh interval: no reload
    batch = Batch(events("db-1"))
    await noise.run(batch)
    assert source.loads == 1
    assert batch.events[0].suppressed_reason is None


async def test_a_failed_reload_keeps_the_silences_it_had(registry: CollectorRegistry) -> None:
    source, clock = Source(db_silence()), Clock()
    noise = stage(source, clock, registry)
    await noise.run(Batch(events("db-1")))
    source.down = True
    clock.now += timedelta(seconds=5)
    batch = Batch(events("db-1"))
    await noise.run(batch)
    assert batch.events[0].suppressed_reason == "silenced:1"
    assert registry.get_sample_value("opsresponder_silence_load_failures_total") == 1


async def test_an_event_already_suppressed_keeps_its_reason(registry: CollectorRegistry) -> None:
    noise = stage(Source(db_silence()), Clock(), registry)
    event = make_event(host="db-1", suppressed_reason="maintenance")
    batch = Batch([event])
    await noise.run(batch)
    assert event.suppressed_reason == "maintenance" and batch.trace == []


async def test_flapping_enters_and_leaves(registry: CollectorRegistry) -> None:
    clock = Clock()
    noise = stage(Source(), clock, registry, max_changes=2)

    async def send(state: EventState) -> Event:
        event = make_event(host="web-1", fingerprint="fp", state=state)
        batch = Batch([event])
        await noise.run(batch)
        clock.now += timedelta(minutes=1)
        return event

    states = [EventState.PROBLEM, EventState.RESOLVED, EventState.PROBLEM]
    assert [(await send(s)).suppressed_reason for s in states] == [None, None, None]
    flapped = await send(EventState.RESOLVED)  # the third change: more than two
    assert flapped.suppressed_reason == "flapping"
    assert suppressed(registry, "flapping") == 1

    # The last change was at minute 3; `send` moved the clock to minute 4.
    clock.now += timedelta(minutes=28)
    assert (await send(EventState.RESOLVED)).suppressed_reason == "flapping"  # minute 32: stable 29 minutes
    assert (await send(EventState.RESOLVED)).suppressed_reason is None  # minute 33: stable for the window
    assert suppressed(registry, "flapping") == 2


async def test_a_silence_wins_over_flapping_in_the_reason(registry: CollectorRegistry) -> None:
    clock = Clock()
    noise = stage(Source(db_silence()), clock, registry, max_changes=1)
    reasons = []
    for state in (EventState.PROBLEM, EventState.RESOLVED, EventState.PROBLEM):
        batch = Batch([make_event(host="db-1", fingerprint="fp", state=state)])
        await noise.run(batch)
        reasons.append(batch.events[0].suppressed_reason)
    assert reasons == ["silenced:1"] * 3
    assert suppressed(registry, "flapping") == 0


async def test_the_tokens_of_events_never_stored_are_given_back(registry: CollectorRegistry) -> None:
    config = NoiseConfig(rate_limit=RateLimitConfig(default_per_minute=2))
    ticks = [100.0]
    noise = Noise(Source(), config, Clock(), NoiseMetrics(registry), monotonic=lambda: ticks[0])
    first = Batch(events("a", "b"))  # both go on, the source's two tokens spent
    await noise.run(first)
    assert [e.suppressed_reason for e in first.events] == [None, None]

    # "b" was answered 503 and never stored: its token comes back, so its re-sent copy goes on.
    for hook in first.not_stored_hooks:
        await hook([first.events[1]])
    again = Batch(events("b", "c"))
    await noise.run(again)
    assert [e.suppressed_reason for e in again.events] == [None, "rate_limited"]
