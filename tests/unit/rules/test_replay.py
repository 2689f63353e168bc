"""The replay's firing semantics, on hand-made match times (minutes), and the rate's wording."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsresponder.rules.replay import (
    AFTER,
    DAY,
    MATCH,
    Replay,
    Semantics,
    describe_rate,
    firings,
    no_history,
    per_day,
)
from opsresponder.rules.triggers import TriggerRuleBody

M = 60.0


def semantics(**fields: Any) -> Semantics:
    return Semantics.of(msgspec.convert({"name": "r", "conditions": {}, **fields}, TriggerRuleBody))


def rows(*minutes: float, group: Hashable = None, kind: int = MATCH) -> list[tuple[float, Hashable, int]]:
    return [(m * M, group, kind) for m in minutes]


def fired_minutes(s: Semantics, data: list[tuple[float, Hashable, int]], end: float = 10_000) -> list[float]:
    data = sorted(data, key=lambda r: r[0])
    return [t / M for t in firings(s, data, 0.0, end * M)]


def test_every_match_fires_without_limits() -> None:
    assert fired_minutes(semantics(), rows(1, 2, 3)) == [1, 2, 3]


def test_cooldown_holds_back_firings_per_group() -> None:
    s = semantics(cooldown_minutes=10)
    data = rows(0, 5, 10, 12, 25, group="a") + rows(5, group="b")
    assert fired_minutes(s, data) == [0, 5, 10, 25]  # a: 0, 10, 25 (5 and 12 too soon); b: 5


def test_max_per_hour_is_a_sliding_hour_per_group() -> None:
    s = semantics(max_triggers_per_hour=2)
    assert fired_minutes(s, rows(0, 1, 2, 59, 60, 61, 62)) == [0, 1, 60, 61]


def test_threshold_counts_within_the_window_and_uses_up_what_fired() -> None:
    s = semantics(threshold=3, time_window_minutes=10)
    # 0, 5 and 20: never three within 10 minutes; 20, 25, 28 fire at 28; 29, 30 then 31 fire again.
    assert fired_minutes(s, rows(0, 5, 20, 25, 28, 29, 30, 31)) == [28, 31]


def test_threshold_per_group() -> None:
    s = semantics(threshold=2, time_window_minutes=5, group_by=["host"])
    data = rows(0, 2, group="a") + rows(1, 7, group="b")
    assert fired_minutes(s, data) == [2]


def test_a_held_back_firing_uses_up_nothing() -> None:
    s = semantics(threshold=2, time_window_minutes=60, cooldown_minutes=30)
    # Fires at 1; at 10 the threshold holds again (2, 10) but the cooldown holds it back; at 31 it fires
    # with the events still in the window.
    assert fired_minutes(s, rows(0, 1, 2, 10, 31)) == [1, 31]


def test_heartbeat_absence_fires_once_per_silence_and_at_the_end() -> None:
    s = semantics(absence={"within_minutes": 10}, group_by=["host"])
    data = rows(0, 5, 30, 35, group="a")
    # a: silent from 5 to 30 (fires at 15), from 35 to the end at 100 (fires at 45).
    assert fired_minutes(s, data, end=100) == [15, 45]


def test_expected_groups_are_awaited_from_the_start() -> None:
    s = semantics(absence={"within_minutes": 10, "expected_groups": ["b"]}, group_by=["host"])
    data = rows(1, 8, group="a")
    assert fired_minutes(s, data, end=30) == [10, 18]  # b never came (10), a fell silent at 8 (18)


def test_deadline_absence_needs_the_event_after_in_time() -> None:
    s = semantics(absence={"within_minutes": 10, "after": {"event_type": "restart"}}, group_by=["host"])
    data = [
        *rows(0, group="a", kind=AFTER), *rows(5, group="a"),  # resolved in time
        *rows(20, 25, group="a", kind=AFTER), *rows(40, group="a"),  # late: fires at 30
        *rows(50, group="b", kind=AFTER),  # never: fires at 60
        *rows(95, group="c", kind=AFTER),  # its deadline is after the end
    ]  # fmt: skip
    assert fired_minutes(s, data, end=100) == [30, 60]


def test_per_day_counts_from_the_first_stored_event() -> None:
    end = 7 * DAY
    fired = [0.5 * DAY, 5.5 * DAY, 5.6 * DAY, 6.9 * DAY]
    assert per_day(fired, first_event=0.1 * DAY, start=0.0, end=end) == [1, 0, 0, 0, 0, 2, 1]
    assert per_day(fired[1:], first_event=5.2 * DAY, start=0.0, end=end) == [2, 1]


@pytest.mark.parametrize(
    ("counts", "sample", "text"),
    [
        ([2, 3, 2, 2, 3, 3, 2], 41_200, "2-3 per day, from 41,200 events over 7 days"),
        ([0], 12, "0 per day, from 12 events over 1 day"),
        ([4, 4], 1_000_000, "4 per day, from 1,000,000 events over 2 days"),
    ],
)
def test_the_rate_reads_like_the_spec(counts: list[int], sample: int, text: str) -> None:
    assert describe_rate(counts, sample) == text


def test_no_history() -> None:
    assert no_history(7) == "no history: no events stored in the last 7 days"


@settings(max_examples=200, deadline=None)
@given(
    fields=st.fixed_dictionaries(
        {},
        optional={
            "threshold": st.integers(1, 4),
            "cooldown_minutes": st.integers(0, 30),
            "max_triggers_per_hour": st.integers(1, 3),
            "absence": st.fixed_dictionaries(
                {"within_minutes": st.integers(1, 30)},
                optional={"after": st.just({"host": "x"}), "expected_groups": st.just(["z"])},
            ),
        },
    ),
    gaps=st.lists(
        st.tuples(st.integers(0, 40), st.sampled_from(["x", "y", "z"]), st.integers(1, 3)), max_size=60
    ),
    cut=st.integers(0, 60),
)
def test_feeding_in_chunks_replays_as_feeding_at_once(
    fields: dict[str, Any], gaps: list[tuple[int, str, int]], cut: int
) -> None:
    if fields.get("threshold", 1) > 1:
        fields.pop("absence", None)
        fields["time_window_minutes"] = 20
    s = semantics(group_by=["host"], **fields)
    data: list[tuple[float, Hashable, int]] = []
    t = 0.0
    for gap, group, kind in gaps:
        t += gap * M
        data.append((t, group, kind))
    whole = firings(s, data, 0.0, t + 100 * M)
    replay = Replay(s, 0.0, t + 100 * M)
    replay.feed(data[:cut])
    replay.feed(data[cut:])
    assert replay.finish() == whole
    assert whole == sorted(whole) and all(0.0 <= f <= t + 100 * M for f in whole)
