"""The engine agrees with a straightforward reference model of the rule semantics on random sequences of
batches (random rules: window, threshold, group_by, cooldown, max per hour), also when some events are
never stored and what was recorded for them is taken back after their batch."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from opsresponder.core.event import Event
from opsresponder.pipeline.rules import RuleEngine
from opsresponder.rules.evaluation import RuleSpec
from opsresponder.state import MemoryStateBackend, StateBackend
from tests.factories import make_event
from tests.unit.pipeline.rules.conftest import T0, redis_backend
from tests.unit.state.test_backends import random_prefix


@st.composite
def rule_bodies(draw: st.DrawFn) -> dict[str, Any]:
    window = draw(st.none() | st.integers(1, 30))
    body: dict[str, Any] = {
        "conditions": draw(st.sampled_from([{"event_type": "x"}, {"event_type": ["x", "y"]}, {"host": "a"}])),
        "time_window_minutes": window,
        "threshold": 1 if window is None else draw(st.integers(1, 4)),
        "cooldown_minutes": draw(st.integers(0, 20)),
        "max_triggers_per_hour": draw(st.none() | st.integers(1, 3)),
        "group_by": draw(st.sampled_from([[], ["host"]])),
    }
    return body


events_st = st.builds(
    lambda host, event_type: make_event(host=host, event_type=event_type, now=T0),
    st.sampled_from(["a", "b", "c"]),
    st.sampled_from(["x", "y"]),
)
# (minutes since the previous batch, the batch's events)
batches_st = st.lists(st.tuples(st.integers(0, 25), st.lists(events_st, min_size=1, max_size=6)), max_size=12)


def reference(rules: list[RuleSpec], batches: list[tuple[int, list[Event]]]) -> list[tuple[int, str, int]]:
    """(rule_id, group, position of the completing event) of every firing, by the semantics as written."""
    return reference_with_losses(rules, _none_lost(batches))


async def engine_firings(
    state: StateBackend, rules: list[RuleSpec], batches: list[tuple[int, list[Event]]]
) -> list[tuple[int, str, int]]:
    return await engine_firings_with_losses(state, rules, _none_lost(batches))


async def on_redis(
    rules: list[RuleSpec], batches: list[tuple[int, list[tuple[Event, bool]]]]
) -> list[tuple[int, str, int]]:
    """`engine_firings_with_losses` on a Redis backend of its own (a fresh key prefix)."""
    async for state in redis_backend(random_prefix()):
        return await engine_firings_with_losses(state, rules, batches)
    raise AssertionError("no Redis")


def _none_lost(batches: list[tuple[int, list[Event]]]) -> list[tuple[int, list[tuple[Event, bool]]]]:
    return [(minutes, [(event, False) for event in events]) for minutes, events in batches]


@settings(max_examples=300, deadline=None)
@given(bodies=st.lists(rule_bodies(), min_size=1, max_size=4), batches=batches_st)
def test_the_engine_agrees_with_the_reference_model(
    bodies: list[dict[str, Any]], batches: list[tuple[int, list[Event]]]
) -> None:
    rules = [RuleSpec.from_json(i + 1, body) for i, body in enumerate(bodies)]
    assert asyncio.run(engine_firings(MemoryStateBackend(), rules, batches)) == reference(rules, batches)


@settings(max_examples=40, deadline=None)
@given(bodies=st.lists(rule_bodies(), min_size=1, max_size=4), batches=batches_st)
def test_on_redis_too(bodies: list[dict[str, Any]], batches: list[tuple[int, list[Event]]]) -> None:
    """The batched Redis scripts (window_add_many, window_count_many) keep the same semantics."""
    rules = [RuleSpec.from_json(i + 1, body) for i, body in enumerate(bodies)]
    assert asyncio.run(on_redis(rules, _none_lost(batches))) == reference(rules, batches)


# As batches_st, each event marked lost or not: a lost event is never stored (its caller was answered 503),
# so what the engine recorded for it is taken back after its batch (the rules stage's hook).
lossy_batches_st = st.lists(
    st.tuples(st.integers(0, 25), st.lists(st.tuples(events_st, st.booleans()), min_size=1, max_size=6)),
    max_size=12,
)


def reference_with_losses(
    rules: list[RuleSpec], batches: list[tuple[int, list[tuple[Event, bool]]]]
) -> list[tuple[int, str, int]]:
    """(rule_id, group, position of the completing event) of every firing, by the semantics as written;
    after each batch its lost events count for nothing: neither their matches nor the firings they
    completed (which are not stored, so not returned either). Within their batch they counted, as the
    batch was evaluated before anyone knew."""
    hits: dict[tuple[int, str], list[tuple[float, int]]] = defaultdict(list)
    fires: dict[tuple[int, str], list[tuple[float, int]]] = defaultdict(list)
    out: list[tuple[int, str, int]] = []
    t = 0.0
    position = 0
    for minutes, items in batches:
        t += minutes * 60
        lost_here: set[int] = set()
        for event, lost in items:
            for r in rules:
                if not r.condition.matches(event):
                    continue
                group = event.host or "" if r.group_by else ""
                key = (r.rule_id, group)
                hits[key].append((t, position))
                if r.time_window_minutes is None:
                    count = 1
                else:
                    count = sum(1 for h, _ in hits[key] if h > t - r.time_window_minutes * 60)
                if count < r.threshold:
                    continue
                if r.cooldown_minutes and any(f > t - r.cooldown_minutes * 60 for f, _ in fires[key]):
                    continue
                limit = r.max_triggers_per_hour
                if limit is not None and sum(1 for f, _ in fires[key] if f > t - 3600) >= limit:
                    continue
                fires[key].append((t, position))
                if not lost:
                    out.append((r.rule_id, group, position))
            if lost:
                lost_here.add(position)
            position += 1
        for table in (hits, fires):
            for key, entries in table.items():
                table[key] = [(at, p) for at, p in entries if p not in lost_here]
    return sorted(out)


async def engine_firings_with_losses(
    state: StateBackend, rules: list[RuleSpec], batches: list[tuple[int, list[tuple[Event, bool]]]]
) -> list[tuple[int, str, int]]:
    engine = RuleEngine(state)
    engine.load(rules)
    now = T0
    out = []
    position = 0
    for minutes, items in batches:
        now += timedelta(minutes=minutes)
        events = [event for event, _ in items]
        lost = {i for i, (_, is_lost) in enumerate(items) if is_lost}
        evaluation = await engine.evaluate(events, now)
        await state.window_take_back_many([(key, at) for i, key, at in evaluation.recorded if i in lost])
        index = {id(e): i for i, e in enumerate(events)}
        for f in evaluation.firings:
            completing = index[id(f.events[-1])]
            if completing not in lost:
                out.append((f.rule_id, f.group_key, position + completing))
        position += len(events)
    return sorted(out)


@settings(max_examples=300, deadline=None)
@given(bodies=st.lists(rule_bodies(), min_size=1, max_size=4), batches=lossy_batches_st)
def test_events_never_stored_count_for_nothing_after_their_batch(
    bodies: list[dict[str, Any]], batches: list[tuple[int, list[tuple[Event, bool]]]]
) -> None:
    rules = [RuleSpec.from_json(i + 1, body) for i, body in enumerate(bodies)]
    firings = asyncio.run(engine_firings_with_losses(MemoryStateBackend(), rules, batches))
    assert firings == reference_with_losses(rules, batches)


@settings(max_examples=40, deadline=None)
@given(bodies=st.lists(rule_bodies(), min_size=1, max_size=4), batches=lossy_batches_st)
def test_events_never_stored_count_for_nothing_on_redis_too(
    bodies: list[dict[str, Any]], batches: list[tuple[int, list[tuple[Event, bool]]]]
) -> None:
    rules = [RuleSpec.from_json(i + 1, body) for i, body in enumerate(bodies)]
    assert asyncio.run(on_redis(rules, batches)) == reference_with_losses(rules, batches)
