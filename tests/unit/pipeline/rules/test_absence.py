"""Absence rules with an injected clock on both backends: heartbeats (with expected groups) and deadlines
opened by an `after` event; the checker fires each missed deadline once, also with two replicas."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from opsresponder.core.event import Event
from opsresponder.pipeline.rules import AbsenceChecker, RuleBook, RuleEngine, RuleMetrics
from opsresponder.rules.evaluation import Firing, RuleSpec, StaticRules
from opsresponder.state import StateBackend
from tests.factories import make_event
from tests.unit.pipeline.rules.conftest import Clock


class Sink:
    def __init__(self, fail: bool = False) -> None:
        self.firings: list[Firing] = []
        self.fail = fail

    async def write_firings(self, firings: Sequence[Firing]) -> None:
        if self.fail:
            raise ConnectionError("database down")
        self.firings.extend(firings)


def heartbeat(**absence: Any) -> RuleSpec:
    return RuleSpec.from_json(
        9,
        {"name": "backup", "conditions": {"event_type": "backup_done"}, "group_by": ["host"],
         "absence": {"within_minutes": 60, **absence}},
    )  # fmt: skip


def restart_resolve() -> RuleSpec:
    return RuleSpec.from_json(
        10,
        {"name": "resolve after restart", "conditions": {"event_type": "service_up"}, "group_by": ["host"],
         "absence": {"within_minutes": 10, "after": {"event_type": "service_restart"}}},
    )  # fmt: skip


def checker(state: StateBackend, clock: Clock, rules: list[RuleSpec], sink: Sink) -> AbsenceChecker:
    book = RuleBook(StaticRules(rules), RuleEngine(state), clock, reload_seconds=60)
    return AbsenceChecker(book, sink, clock, 15, RuleMetrics(CollectorRegistry()))


async def stage_sees(state: StateBackend, clock: Clock, rules: list[RuleSpec], *events: Event) -> list[str]:
    engine = RuleEngine(state)
    engine.load(rules)
    evaluation = await engine.evaluate(list(events), clock())
    assert evaluation.firings == []  # absence rules never fire from the stage
    return [evaluation.traces[i] for i in range(len(events))]


async def test_heartbeat_fires_per_group_once_when_it_stops(state: StateBackend, clock: Clock) -> None:
    sink = Sink()
    rules = [heartbeat()]
    check = checker(state, clock, rules, sink)
    traces = await stage_sees(
        state,
        clock,
        rules,
        make_event(event_type="backup_done", host="a"),
        make_event(event_type="backup_done", host="b"),
    )
    assert traces[0].startswith(
        "rule 9 'backup' [a] (absence): heartbeat, next one due by 2026-03-02T10:00:00"
    )
    clock.advance(minutes=50)
    await stage_sees(state, clock, rules, make_event(event_type="backup_done", host="b"))
    clock.advance(minutes=10)  # a is due now; b is due at 10:50
    assert [(f.group_key, f.kind) for f in await check.check()] == [("a", "absence")]
    assert sink.firings[0].detail == {"rule_name": "backup", "deadline": "2026-03-02T10:00:00+00:00",
                                      "within_minutes": 60, "variant": "heartbeat"}  # fmt: skip
    clock.advance(minutes=30)
    assert await check.check() == []  # a fired once; it re-arms only when a backup arrives
    clock.advance(minutes=20)
    assert [f.group_key for f in await check.check()] == ["b"]
    await stage_sees(state, clock, rules, make_event(event_type="backup_done", host="a"))
    clock.advance(minutes=61)
    assert [f.group_key for f in await check.check()] == ["a"]


async def test_expected_groups_are_armed_from_the_rules_start(state: StateBackend, clock: Clock) -> None:
    sink = Sink()
    check = checker(state, clock, [heartbeat(expected_groups=["db-1", "db-2"])], sink)
    assert await check.check() == []  # loads the rule, arms both groups
    clock.advance(minutes=30)
    await stage_sees(state, clock, [heartbeat()], make_event(event_type="backup_done", host="db-2"))
    clock.advance(minutes=30)
    assert [f.group_key for f in await check.check()] == ["db-1"]
    clock.advance(minutes=30)
    assert [f.group_key for f in await check.check()] == ["db-2"]


async def test_after_opens_a_deadline_that_a_matching_event_closes(state: StateBackend, clock: Clock) -> None:
    sink = Sink()
    rules = [restart_resolve()]
    check = checker(state, clock, rules, sink)
    restart_a = make_event(event_type="service_restart", host="a")
    restart_b = make_event(event_type="service_restart", host="b")
    traces = await stage_sees(
        state, clock, rules, restart_a, restart_b, make_event(event_type="service_up", host="c")
    )
    assert "[a] (absence): opened its deadline, due 2026-03-02T09:10:00+00:00" in traces[0]
    assert traces[2] == "rule 10 'resolve after restart' [c] (absence): matched, no deadline was open"
    clock.advance(minutes=5)
    up_a = make_event(event_type="service_up", host="a")
    traces = await stage_sees(state, clock, rules, up_a, make_event(event_type="service_restart", host="b"))
    name = "rule 10 'resolve after restart'"
    assert traces == [
        f"{name} [a] (absence): closed its deadline in time",
        f"{name} [b] (absence): its deadline was already open",
    ]
    clock.advance(minutes=5)
    firings = await check.check()
    assert [(f.group_key, f.detail["variant"]) for f in firings] == [("b", "after")]
    clock.advance(minutes=60)
    assert await check.check() == []


async def test_two_replicas_fire_a_missed_deadline_once(
    state: StateBackend, peer: StateBackend, clock: Clock
) -> None:
    sink = Sink()
    rules = [restart_resolve()]
    await stage_sees(
        state, clock, rules, *(make_event(event_type="service_restart", host=f"h{i}") for i in range(20))
    )
    clock.advance(minutes=11)
    one, two = checker(state, clock, rules, sink), checker(peer, clock, rules, sink)
    import asyncio

    await asyncio.gather(one.check(), two.check())
    assert sorted(f.group_key for f in sink.firings) == sorted(f"h{i}" for i in range(20))


async def test_a_failed_write_puts_the_deadlines_back(state: StateBackend, clock: Clock) -> None:
    rules = [restart_resolve()]
    await stage_sees(state, clock, rules, make_event(event_type="service_restart", host="a"))
    clock.advance(minutes=11)
    with pytest.raises(ConnectionError):
        await checker(state, clock, rules, Sink(fail=True)).check()
    sink = Sink()
    assert [f.group_key for f in await checker(state, clock, rules, sink).check()] == ["a"]
