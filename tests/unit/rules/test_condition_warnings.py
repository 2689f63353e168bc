"""`Condition.warnings()`: conditions that can never be true, patterns that match any text."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsresponder.core.event import Event
from opsresponder.rules.conditions import compile_conditions
from tests.condition_docs import condition_docs, events


@pytest.mark.parametrize(
    ("doc", "warning"),
    [
        ({"metadata.cpu": {"$gt": 5, "$lt": 3}},
         "metadata.cpu: can never be true, these conditions exclude each other: "
         "conditions.metadata.cpu.$gt, conditions.metadata.cpu.$lt"),
        ({"$and": [{"metadata.cpu": {"$gt": 5}}, {"metadata.cpu": {"$lte": 5}}]},
         "metadata.cpu: can never be true"),
        ({"score": {"$gte": 5, "$lt": 5}}, "score: can never be true"),
        ({"$and": [{"severity": "critical"}, {"severity": "high"}]},
         "severity: can never be true, these conditions exclude each other: "
         "conditions.$and[0].severity, conditions.$and[1].severity"),
        ({"$and": [{"severity": {"$gt": "high"}}, {"severity": {"$lt": "medium"}}]},
         "severity: can never be true"),
        ({"$and": [{"severity": ["low", "info"]}, {"severity": {"$gte": "high"}}]},
         "severity: can never be true"),
        ({"$and": [{"host": "a"}, {"host": {"$ne": "a"}}]}, "host: can never be true"),
        ({"$and": [{"metadata.x": 1}, {"metadata.x": {"$exists": False}}]}, "metadata.x: can never be true"),
        ({"state": {"$nin": ["problem", "resolved"], "$exists": True}}, "state: can never be true"),
        ({"metadata.x": {"$in": []}}, "conditions.metadata.x.$in: an empty list can never be true"),
        ({"host": {"$regex": ".*"}}, "conditions.host.$regex: the pattern matches any text"),
        ({"title": {"$regex": "x*|$"}}, "conditions.title.$regex: the pattern matches any text"),
        ({}, "conditions: empty, so the rule matches every event"),
    ],
)  # fmt: skip
def test_warnings(doc: dict[str, Any], warning: str) -> None:
    warnings = compile_conditions(doc).warnings()
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(warning)


@pytest.mark.parametrize(
    "doc",
    [
        {"metadata.cpu": {"$gt": 3, "$lt": 5}},
        {"metadata.cpu": {"$gte": 5, "$lte": 5}},
        {"$or": [{"severity": "critical"}, {"severity": "high"}]},
        {"severity": {"$gte": "high", "$lte": "high"}},
        {"host": {"$regex": "^web-"}},
        {"host": {"$regex": "$^"}},
        {"$not": {"metadata.cpu": {"$gt": 5, "$lt": 3}}},  # always true under $not: not this warning
        {"metadata.x": {"$exists": False, "$ne": 1}},
        {"host": "a", "service": "b"},
    ],
)
def test_no_warning_for_sound_conditions(doc: dict[str, Any]) -> None:
    assert compile_conditions(doc).warnings() == []


@settings(max_examples=400, deadline=None)
@given(doc=condition_docs, batch=st.lists(events(), min_size=1, max_size=8))
def test_conditions_said_never_true_are_never_all_true(doc: dict[str, Any], batch: list[Event]) -> None:
    """The leaves a warning names (after the colon, by where they are written) never all hold at once."""
    condition = compile_conditions(doc)
    for warning in condition.warnings():
        if "never be true" not in warning:
            continue
        if "exclude each other: " in warning:
            named = set(warning.split("exclude each other: ")[1].split(", "))
        else:
            named = {warning.split(": ")[0]}
        for event in batch:
            results = [leaf for leaf in condition.explain(event).leaves if leaf.at in named]
            assert len(results) == len(named), (warning, results)
            assert not all(leaf.matched for leaf in results), (doc, warning, event)
