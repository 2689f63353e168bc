"""The ``rules`` stage: one trace entry per event, firings under FIRINGS, reloads when the source's
version moves, and a failing state backend degrades (events go on, the trace says why)."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry

from opsresponder.core.batch import Batch
from opsresponder.pipeline.rules import RuleBook, RuleEngine, RuleMetrics, Rules
from opsresponder.rules.evaluation import FIRINGS, RuleSpec
from opsresponder.state import MemoryStateBackend, StateError
from tests.factories import make_event
from tests.unit.pipeline.rules.conftest import Clock


class Source:
    def __init__(self, rules: list[RuleSpec]) -> None:
        self.rules = rules
        self.marker = 1
        self.reads = 0

    async def active_rules(self) -> Sequence[RuleSpec]:
        self.reads += 1
        return self.rules

    async def version(self) -> object:
        return self.marker


def stage(source: Source, state: MemoryStateBackend | None = None) -> tuple[Rules, CollectorRegistry]:
    clock = Clock()
    registry = CollectorRegistry()
    ticks = iter(range(10**6))  # every check is a reload_seconds later than the one before
    book = RuleBook(
        source,
        RuleEngine(state or MemoryStateBackend()),
        clock,
        reload_seconds=1,
        monotonic=lambda: next(ticks),
    )
    return Rules(book, clock, RuleMetrics(registry)), registry


def cpu_rule(rule_id: int = 1) -> RuleSpec:
    return RuleSpec.from_json(rule_id, {"name": "cpu", "conditions": {"metadata.cpu": {"$gt": 90}}})


async def test_each_event_gets_one_trace_entry_and_firings_go_under_their_key() -> None:
    rules, registry = stage(Source([cpu_rule()]))
    events = [make_event(metadata={"cpu": 95}), make_event(metadata={"cpu": 10})]
    batch = Batch(events)
    await rules.run(batch)
    assert [(t.event is e, t.stage) for t, e in zip(batch.trace, events, strict=True)] == [
        (True, "rules"),
        (True, "rules"),
    ]
    assert batch.trace[1].detail == "rule 1 'cpu': not matched (metadata.cpu $gt 90: false)"
    firings = batch.get(FIRINGS)
    assert firings is not None and [f.events[-1] for f in firings] == [events[0]]
    assert registry.get_sample_value("opsresponder_rule_firings_total", {"kind": "trigger"}) == 1


async def test_rules_are_reloaded_when_the_version_moves_only() -> None:
    source = Source([cpu_rule()])
    rules, _ = stage(source)
    await rules.run(Batch([make_event()]))
    await rules.run(Batch([make_event()]))
    assert source.reads == 1
    source.rules, source.marker = [], 2
    batch = Batch([make_event(metadata={"cpu": 95})])
    await rules.run(batch)
    assert source.reads == 2 and batch.get(FIRINGS) is None
    assert [t.detail for t in batch.trace] == ["no active trigger rule"] * len(batch.events)


class BrokenState(MemoryStateBackend):
    async def window_add(self, key: str, window_seconds: float, now: float | None = None) -> int:
        raise StateError("redis down")


async def test_a_failing_state_backend_lets_the_events_through_and_says_why() -> None:
    rule = RuleSpec.from_json(1, {"conditions": {"host": "web-01"}, "time_window_minutes": 5, "threshold": 2})
    rules, registry = stage(Source([rule]), BrokenState())
    batch = Batch([make_event()])
    await rules.run(batch)
    assert batch.trace[0].detail == "not evaluated: the state backend failed (redis down)"
    assert batch.get(FIRINGS) is None
    assert registry.get_sample_value("opsresponder_rule_evaluation_failures_total", {"what": "evaluate"}) == 1


class FailsAfterCounting(MemoryStateBackend):
    """Counts the matches, then fails at the cooldown's read."""

    def __init__(self) -> None:
        super().__init__()
        self.added: list[tuple[str, float, float]] = []

    async def window_add_many(self, hits: Sequence[tuple[str, float, float]]) -> list[int]:
        self.added += hits
        return await super().window_add_many(hits)

    async def window_count_many(self, queries: Sequence[tuple[str, float, float]]) -> list[int]:
        raise StateError("redis down")


async def test_matches_counted_before_a_failure_are_taken_back_if_the_event_is_not_stored() -> None:
    rule = RuleSpec.from_json(
        1, {"conditions": {"host": "web-01"}, "time_window_minutes": 5, "threshold": 1, "cooldown_minutes": 9}
    )
    state = FailsAfterCounting()
    rules, registry = stage(Source([rule]), state)
    event = make_event()
    batch = Batch([event])
    await rules.run(batch)
    assert batch.trace[0].detail == "not evaluated: the state backend failed (redis down)"
    [(key, window, at)] = state.added  # the match, counted before the failure

    for hook in batch.not_stored_hooks:  # answered 503: not stored
        await hook([event])

    assert await state.window_count(key, window, at) == 0
    assert registry.get_sample_value("opsresponder_rule_hits_taken_back_total") == 1
