"""Compiled conditions agree with the plain reference evaluator in tests/condition_docs.py."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from opsresponder.core.event import Event
from opsresponder.rules.conditions import compile_conditions
from tests.condition_docs import condition_docs, events, reference


@settings(max_examples=500, deadline=None)
@given(doc=condition_docs, batch=st.lists(events(), min_size=1, max_size=5))
def test_compiled_conditions_agree_with_the_reference(doc: dict[str, Any], batch: list[Event]) -> None:
    condition = compile_conditions(doc)
    for event in batch:
        expected = reference(doc, event)
        assert condition.matches(event) is expected, (doc, event)
        assert condition.explain(event).matched is expected, (doc, event)
