"""The engine's semantics with an injected clock, on the memory and Redis backends: windows, thresholds,
group_by, cooldown, max per hour, min severity, suppressed and inactive rules, the trace's reasons."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from opsresponder.core.event import Event
from opsresponder.core.severity import Severity
from opsresponder.pipeline.rules import RuleEngine
from opsresponder.pipeline.rules.keys import cooldown_key, hourly_key, window_key
from opsresponder.rules.evaluation import Firing, RuleSpec
from opsresponder.state import MemoryStateBackend, StateBackend
from opsresponder.state.errors import StateError
from tests.factories import make_event
from tests.unit.pipeline.rules.conftest import Clock


def rule(rule_id: int = 1, **body: Any) -> RuleSpec:
    body.setdefault("name", f"r{rule_id}")
    body.setdefault("conditions", {"event_type": "threshold_breach"})
    return RuleSpec.from_json(rule_id, body)


async def run(engine: RuleEngine, clock: Clock, *events: Event) -> tuple[list[Firing], list[str]]:
    evaluation = await engine.evaluate(list(events), clock())
    return evaluation.firings, [evaluation.traces.get(i, "") for i in range(len(events))]


async def fired_over_time(
    engine: RuleEngine, clock: Clock, minutes: Sequence[float], **event: Any
) -> list[int]:
    """Send one event at each of `minutes` (from now); the minutes at which the rule fired."""
    start = clock.now
    fired = []
    for m in minutes:
        clock.now = start
        clock.advance(minutes=m)
        firings, _ = await run(engine, clock, make_event(**event))
        if firings:
            fired.append(int(m))
    return fired


async def test_threshold_fires_when_n_matching_events_fall_in_the_window(
    state: StateBackend, clock: Clock
) -> None:
    engine = RuleEngine(state)
    engine.load([rule(time_window_minutes=10, threshold=3)])
    # 0, 1: held; 2: third in 10 min, fires; 3: still 4 in the window, fires again (no cooldown);
    # 20, 21: the window emptied, 1 and 2 of 3.
    assert await fired_over_time(engine, clock, [0, 1, 2, 3, 20, 21]) == [2, 3]


async def test_the_trace_says_held_by_threshold_and_fired(state: StateBackend, clock: Clock) -> None:
    engine = RuleEngine(state)
    engine.load([rule(7, name="cpu", time_window_minutes=5, threshold=2)])
    firings, traces = await run(engine, clock, make_event(), make_event(title="other"))
    assert traces == [
        "rule 7 'cpu': matched, held by threshold (1 of 2 in 5 min)",
        "rule 7 'cpu': matched, fired (2 of 2 in 5 min)",
    ]
    # The firing names both events of the batch that made it, the completing one last.
    [firing] = firings
    assert firing.rule_id == 7 and firing.kind == "trigger" and firing.fired_at == clock.now
    assert [e.title for e in firing.events] == ["High CPU usage", "other"]
    assert firing.detail == {"rule_name": "cpu", "matched_in_window": 2, "threshold": 2, "window_minutes": 5}


async def test_group_by_counts_each_group_separately(state: StateBackend, clock: Clock) -> None:
    engine = RuleEngine(state)
    engine.load([rule(time_window_minutes=10, threshold=2, group_by=["host"])])
    firings, traces = await run(
        engine, clock, make_event(host="a"), make_event(host="b"), make_event(host="a"), make_event(host="c")
    )
    assert [(f.group_key, f.events[-1].host) for f in firings] == [("a", "a")]
    assert "[b]: matched, held by threshold (1 of 2" in traces[1]
    clock.advance(minutes=1)
    firings, _ = await run(engine, clock, make_event(host="b"))
    assert [f.group_key for f in firings] == ["b"]


async def test_group_by_several_paths_and_a_missing_value(state: StateBackend, clock: Clock) -> None:
    engine = RuleEngine(state)
    engine.load([rule(group_by=["host", "metadata.disk"])])
    firings, _ = await run(
        engine, clock, make_event(host="a", metadata={"disk": "/var"}), make_event(host="a", metadata={})
    )
    assert [f.group_key for f in firings] == ["a|/var", "a|"]


async def test_cooldown_holds_the_group_after_a_firing(state: StateBackend, clock: Clock) -> None:
    engine = RuleEngine(state)
    engine.load([rule(cooldown_minutes=10, group_by=["host"])])
    assert await fired_over_time(engine, clock, [0, 5, 9, 10, 11, 15, 21], host="a") == [0, 10, 21]
    # Another group is not held by a's cooldown.
    _, traces = await run(engine, clock, make_event(host="a"), make_event(host="b"))
    assert traces[0] == "rule 1 'r1' [a]: matched, held by cooldown (10 min)"
    assert traces[1] == "rule 1 'r1' [b]: matched, fired"


async def test_max_triggers_per_hour_per_group(state: StateBackend, clock: Clock) -> None:
    engine = RuleEngine(state)
    engine.load([rule(max_triggers_per_hour=2)])
    assert await fired_over_time(engine, clock, [0, 10, 20, 59, 60, 61, 70, 71]) == [0, 10, 60, 70]
    _, traces = await run(engine, clock, make_event())
    assert traces == ["rule 1 'r1': matched, held by max_triggers_per_hour (2)"]


async def test_threshold_cooldown_and_limit_together(state: StateBackend, clock: Clock) -> None:
    engine = RuleEngine(state)
    engine.load([rule(time_window_minutes=5, threshold=2, cooldown_minutes=3, max_triggers_per_hour=2)])
    minutes = [0, 1, 2, 4, 5, 8, 9, 12, 13]
    # 1: 2 in window, fires; 2: cooldown; 4: fires (cooldown over); 5: cooldown; 8: limit (2 this hour)...
    assert await fired_over_time(engine, clock, minutes) == [1, 4]


async def test_batch_of_many_events_for_one_group_applies_the_limits_in_order(
    state: StateBackend, clock: Clock
) -> None:
    engine = RuleEngine(state)
    engine.load([rule(time_window_minutes=1, threshold=2, max_triggers_per_hour=2)])
    firings, traces = await run(engine, clock, *(make_event(title=str(i)) for i in range(6)))
    assert [f.events[-1].title for f in firings] == ["1", "2"]
    assert "held by max_triggers_per_hour" in traces[3]


async def test_not_matched_says_why_including_a_type_mismatch(state: StateBackend, clock: Clock) -> None:
    engine = RuleEngine(state)
    engine.load(
        [rule(2, name="cpu", conditions={"event_type": "threshold_breach", "metadata.cpu": {"$gt": 90}})]
    )
    _, traces = await run(
        engine,
        clock,
        make_event(metadata={"cpu": "high"}),
        make_event(metadata={}),
        make_event(event_type="x"),
    )
    assert traces[0] == "rule 2 'cpu': not matched (metadata.cpu $gt 90: text value, needs number)"
    assert traces[1] == "rule 2 'cpu': not matched (metadata.cpu $gt 90: missing)"
    # The index never offered the rule to an event of another event_type.
    assert traces[2] == "no rule can match its event_type, source and severity"


async def test_min_severity_suppressed_and_inactive_are_not_evaluated(
    state: StateBackend, clock: Clock
) -> None:
    engine = RuleEngine(state, min_severity=Severity.MEDIUM)
    engine.load([rule(1), rule(2, active=False)])
    assert engine.rule_count == 1
    firings, traces = await run(
        engine,
        clock,
        make_event(severity=Severity.LOW),
        make_event(suppressed_reason="silenced:4"),
        make_event(severity=Severity.MEDIUM),
    )
    assert traces[0] == "not evaluated: severity low is below rules.min_severity medium"
    assert traces[1] == "not evaluated: suppressed (silenced:4)"
    assert traces[2] == "rule 1 'r1': matched, fired"
    assert [f.rule_id for f in firings] == [1]


async def test_info_is_below_the_default_min_severity(state: StateBackend, clock: Clock) -> None:
    engine = RuleEngine(state)
    engine.load([rule()])
    firings, traces = await run(engine, clock, make_event(severity=Severity.INFO))
    assert firings == [] and traces[0].startswith("not evaluated: severity info")


async def test_an_edited_window_starts_a_fresh_count(state: StateBackend, clock: Clock) -> None:
    engine = RuleEngine(state)
    engine.load([rule(time_window_minutes=10, threshold=2)])
    await run(engine, clock, make_event())
    engine.load([rule(time_window_minutes=20, threshold=2)])
    firings, _ = await run(engine, clock, make_event())
    assert firings == []


async def test_no_rules_costs_nothing_and_traces_nothing(state: StateBackend, clock: Clock) -> None:
    engine = RuleEngine(state)
    evaluation = await engine.evaluate([make_event()], clock())
    assert evaluation.traces == {} and evaluation.firings == []


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"conditions": {"host": "a"}, "threshold": 3}, "threshold"),
        ({"conditions": {"host": "a"}, "threshold": 0, "time_window_minutes": 5}, "threshold"),
        ({"conditions": {"host": "a"}, "cooldown_minutes": -1}, "cooldown_minutes"),
        ({"conditions": {"host": "a"}, "max_triggers_per_hour": "3"}, "max_triggers_per_hour"),
        ({"conditions": {"host": "a"}, "group_by": ["nope"]}, "group_by[0]"),
        ({"conditions": {"host": "a"}, "group_by": "host"}, "group_by"),
        ({"conditions": {"host": "a"}, "active": "yes"}, "active"),
        ({"conditions": {"host": "a"}, "absence": {}}, "absence.within_minutes"),
        (
            {"conditions": {"host": "a"}, "absence": {"within_minutes": 5, "after": {"x": 1}}},
            "absence.after.x",
        ),
        (
            {"conditions": {"host": "a"}, "absence": {"within_minutes": 5, "expected_groups": [1]}},
            "absence.expected_groups[0]",
        ),
        ({}, "conditions"),
    ],
)
def test_from_json_refuses_a_bad_rule_naming_the_field(body: dict[str, Any], path: str) -> None:
    from opsresponder.rules.conditions import ConditionError

    with pytest.raises(ConditionError) as caught:
        RuleSpec.from_json(1, body)
    assert caught.value.path == path


def test_from_json_reads_the_whole_shape() -> None:
    spec = RuleSpec.from_json(
        456,
        {
            "name": "High CPU Alert Rule",
            "description": "Trigger when CPU usage exceeds 90%",
            "conditions": {"event_type": "threshold_breach", "metadata.cpu_usage": {"$gt": 90}},
            "time_window_minutes": 5,
            "threshold": 3,
            "group_by": ["host"],
            "max_triggers_per_hour": 3,
            "cooldown_minutes": 15,
            "active": True,
            "absence": None,
        },
    )
    assert (spec.rule_id, spec.name, spec.time_window_minutes, spec.threshold) == (
        456,
        "High CPU Alert Rule",
        5,
        3,
    )
    assert (spec.group_by, spec.max_triggers_per_hour, spec.cooldown_minutes) == (("host",), 3, 15)
    assert spec.absence is None and spec.active
    assert spec.condition.matches(make_event(metadata={"cpu_usage": 95}))


def test_why_not_names_the_first_failing_condition_also_inside_groups() -> None:
    from opsresponder.pipeline.rules.engine import why_not

    either = RuleSpec.from_json(1, {"conditions": {"event_type": "threshold_breach", "$or": [{"host": "x"}]}})
    assert why_not(either.condition, make_event(host="web-01")) == "host $eq 'x': false"
    negated = RuleSpec.from_json(2, {"conditions": {"$not": {"host": "web-01"}}})
    assert why_not(negated.condition, make_event(host="web-01")) == "a $not condition held"
    single = RuleSpec.from_json(3, {"conditions": {"severity": "critical"}})
    assert why_not(single.condition, make_event()) == "severity $eq 'critical': false"


async def test_beyond_the_first_few_non_matching_rules_are_listed_by_id(
    state: StateBackend, clock: Clock
) -> None:
    engine = RuleEngine(state)
    engine.load(
        [rule(i, conditions={"host": f"h{i}"}) for i in range(1, 6)]
        + [rule(9, conditions={"host": "web-01"})]
    )
    _, [trace] = await run(engine, clock, make_event(host="web-01"))
    assert trace == (
        "rule 9 'r9': matched, fired; rule 1 'r1': not matched (host $eq 'h1': false); "
        "rule 2 'r2': not matched (host $eq 'h2': false); rule 3 'r3': not matched (host $eq 'h3': false); "
        "not matched either: rules 4, 5"
    )


async def test_firings_come_in_the_order_of_their_completing_events(
    state: StateBackend, clock: Clock
) -> None:
    engine = RuleEngine(state)
    engine.load([rule(1, conditions={"host": "b"}), rule(2, conditions={"host": "a"})])
    firings, _ = await run(engine, clock, make_event(host="a"), make_event(host="b"), make_event(host="a"))
    assert [(f.rule_id, f.events[-1].host) for f in firings] == [(2, "a"), (1, "b"), (2, "a")]


async def test_taking_back_what_was_recorded_for_an_event_undoes_its_count_cooldown_and_hourly_hit(
    state: StateBackend, clock: Clock
) -> None:
    engine = RuleEngine(state)
    engine.load([rule(time_window_minutes=10, threshold=2, cooldown_minutes=30, max_triggers_per_hour=5)])
    first = await engine.evaluate([make_event(host="a")], clock())
    lost = await engine.evaluate([make_event(host="a", title="2")], clock())
    assert len(lost.firings) == 1
    # The second event's match, and the cooldown and hourly hits of the firing it completed.
    assert [i for i, _, _ in lost.recorded] == [0, 0, 0] and len(first.recorded) == 1
    assert await state.window_take_back_many([(key, at) for _, key, at in lost.recorded]) == 3

    # Sent again, it is the second of two in the window again, with no cooldown: it fires.
    again, traces = await run(engine, clock, make_event(host="a", title="2"))
    assert len(again) == 1, traces


async def test_each_hit_is_recorded_for_the_event_it_was_written_for(
    state: StateBackend, clock: Clock
) -> None:
    engine = RuleEngine(state)
    engine.load(
        [
            rule(
                time_window_minutes=10,
                threshold=2,
                cooldown_minutes=30,
                max_triggers_per_hour=5,
                group_by=["host"],
            )
        ]
    )
    # 0 and 1 reach the threshold (1 fires), 2 is held by the cooldown 1 began; 3 is another group's.
    evaluation = await engine.evaluate(
        [make_event(host="a"), make_event(host="a", title="2"), make_event(host="a", title="3"),
         make_event(host="b")],
        clock(),
    )  # fmt: skip
    assert len(evaluation.firings) == 1
    at = clock().timestamp()
    window_a, window_b = window_key(1, 10, "a"), window_key(1, 10, "b")
    assert sorted(evaluation.recorded) == sorted(
        [(0, window_a, at), (1, window_a, at), (2, window_a, at), (3, window_b, at),
         (1, cooldown_key(1, 30, "a"), at), (1, hourly_key(1, "a"), at)]
    )  # fmt: skip


async def test_a_state_failure_at_the_absences_leaves_no_cooldown_behind(clock: Clock) -> None:
    class AbsencesFail(MemoryStateBackend):
        async def deadline_set_many(self, deadlines: Sequence[tuple[str, str, float]]) -> None:
            raise StateError("down")

    state = AbsencesFail()
    engine = RuleEngine(state)
    engine.load(
        [rule(1, cooldown_minutes=30),
         rule(2, conditions={"event_type": "heartbeat"}, absence={"within_minutes": 5})]
    )  # fmt: skip
    with pytest.raises(StateError):
        await engine.evaluate([make_event(), make_event(event_type="heartbeat")], clock())
    # The stage drops the batch's firings on that failure: no cooldown may hold the next event.
    firings, _ = await run(engine, clock, make_event(title="next"))
    assert len(firings) == 1
