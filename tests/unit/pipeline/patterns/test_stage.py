"""The patterns stage: metadata.pattern and a trace entry per event; seeding from the store at start."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry

from opsresponder.config import PatternsConfig
from opsresponder.core.batch import Batch
from opsresponder.pipeline.patterns import PatternMetrics, Patterns, stored_detail, template_id
from opsresponder.store.errors import DatabaseUnavailableError
from tests.factories import make_event


class Source:
    def __init__(self, templates: Sequence[str] = (), failures: int = 0) -> None:
        self.templates = templates
        self.failures = failures
        self.calls = 0

    async def recent_templates(self, limit: int) -> Sequence[str]:
        self.calls += 1
        if self.failures:
            self.failures -= 1
            raise DatabaseUnavailableError("down")
        return self.templates[:limit]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def stage(source: Source, clock: Clock | None = None, **config: object) -> Patterns:
    return Patterns(
        PatternsConfig(**config),  # type: ignore[arg-type]
        source,
        PatternMetrics(CollectorRegistry()),
        monotonic=clock or Clock(),
    )


async def test_every_event_gets_its_template_and_a_trace_entry() -> None:
    batch = Batch([make_event(title="Disk /var full on db-1"), make_event(title="Disk /srv full on db-1")])
    await stage(Source()).run(batch)
    shape = "Disk <PATH> full on db-<NUM>"  # a host name's number is masked too: one shape on many hosts
    expected = {"id": template_id(shape), "template": shape}
    assert [e.metadata["pattern"] for e in batch.events] == [expected, expected]
    assert [(t.event, t.stage) for t in batch.trace] == [(e, "patterns") for e in batch.events]
    assert batch.trace[0].detail == ""  # the template is on the row; the trace API writes it out
    assert stored_detail(batch.events[0], "") == f"template {expected['id']}: {shape}"
    assert stored_detail(batch.events[0], "template x: stored whole") == "template x: stored whole"


async def test_the_events_of_a_batch_get_their_template_as_it_ends_the_batch() -> None:
    batch = Batch(
        [
            make_event(title="Invalid user admin from 10.0.0.1"),
            make_event(title="Invalid user x from 1.2.3.4"),
        ]
    )
    await stage(Source()).run(batch)
    assert {e.metadata["pattern"]["template"] for e in batch.events} == {"Invalid user <*> from <IP>"}


async def test_known_templates_are_loaded_once_before_the_first_batch() -> None:
    source = Source(["Invalid user <*> from <IP>"])
    patterns = stage(source)
    first = Batch([make_event(title="Invalid user oracle from 10.0.0.3")])
    await patterns.run(first)
    await patterns.run(Batch([make_event()]))
    assert first.events[0].metadata["pattern"]["template"] == "Invalid user <*> from <IP>"
    assert source.calls == 1


async def test_a_failing_store_is_retried_later_and_never_holds_a_batch() -> None:
    source, clock = Source(["Invalid user <*> from <IP>"], failures=1), Clock()
    patterns = stage(source, clock)
    batch = Batch([make_event(title="Invalid user oracle from 10.0.0.3")])
    await patterns.run(batch)
    assert batch.events[0].metadata["pattern"]["template"] == "Invalid user oracle from <IP>"
    await patterns.run(Batch([make_event()]))
    assert source.calls == 1  # not before the retry delay
    clock.now = 31.0
    later = Batch([make_event(title="Invalid user tom from 10.0.0.4")])
    await patterns.run(later)
    assert source.calls == 2


async def test_seeding_can_be_switched_off() -> None:
    source = Source(["Invalid user <*> from <IP>"])
    await stage(source, seed_from_store=False).run(Batch([make_event()]))
    assert source.calls == 0
