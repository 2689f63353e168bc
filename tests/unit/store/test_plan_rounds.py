"""The batch planner: no upsert round touches a fingerprint twice, and every event is accounted for."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from opsresponder.core.event import EventState
from opsresponder.store.events import _plan_rounds
from tests.factories import make_event

batches = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(list(EventState))), min_size=1, max_size=30
)


@given(batches)
def test_rounds_cover_the_batch_without_repeating_a_fingerprint(spec: list[tuple[str, EventState]]) -> None:
    events = [make_event(fingerprint=fp, state=state) for fp, state in spec]
    rounds, heads = _plan_rounds(events)
    in_rounds = [i for r in rounds for i in r]
    assert sorted(in_rounds + list(heads)) == list(range(len(events)))
    for r in rounds:
        fingerprints = [events[i].fingerprint for i in r]
        assert len(fingerprints) == len(set(fingerprints))
    for repeat, head in heads.items():
        assert head < repeat
        assert events[head].fingerprint == events[repeat].fingerprint
        assert events[head].state == events[repeat].state
        # Nothing of that fingerprint in another state came in between.
        between = [
            events[i] for i in range(head + 1, repeat) if events[i].fingerprint == events[head].fingerprint
        ]
        assert all(e.state == events[head].state for e in between)


def test_problem_resolve_problem_needs_three_rounds() -> None:
    events = [
        make_event(fingerprint="x", state=s)
        for s in (EventState.PROBLEM, EventState.RESOLVED, EventState.PROBLEM)
    ]
    rounds, heads = _plan_rounds(events)
    assert rounds == [[0], [1], [2]]
    assert heads == {}
