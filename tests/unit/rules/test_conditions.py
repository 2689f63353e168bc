"""The condition language in Python, operator by operator: matches, type mismatches, missing paths."""

from __future__ import annotations

from typing import Any

import pytest

from opsresponder.core.event import Event, EventState
from opsresponder.core.severity import Severity
from opsresponder.rules.conditions import compile_conditions
from tests.factories import make_event


def matches(conditions: dict[str, Any], event: Event) -> bool:
    condition = compile_conditions(conditions)
    result = condition.matches(event)
    # explain walks the tree separately (no short cut, generic leaf tests): it must always agree.
    assert condition.explain(event).matched == result
    return result


EVENT = make_event(
    source="prometheus",
    event_type="threshold_breach",
    severity=Severity.HIGH,
    host="web-server-01",
    service=None,
    title="High CPU usage on web-server-01",
    tags=["prod", "linux"],
    score=7.5,
    metadata={
        "cpu_usage": 93.5,
        "cores": 8,
        "region": "eu-west",
        "healthy": False,
        "disks": ["/", "/var"],
        "nested": {"level": {"value": 3}},
        "nothing": None,
        "numeric_text": "95",
    },
)


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ({"event_type": "threshold_breach"}, True),
        ({"event_type": "Threshold_breach"}, False),  # case-sensitive
        ({"severity": "high"}, True),
        ({"severity": ["critical", "high"]}, True),  # a list is "any of"
        ({"severity": ["critical", "low"]}, False),
        ({"host": {"$eq": "web-server-01"}}, True),
        ({"host": {"$ne": "web-server-01"}}, False),
        ({"service": {"$ne": "nginx"}}, True),  # $ne is "not $eq": a missing field is not equal
        ({"service": "nginx"}, False),
        ({"state": "problem"}, True),
        ({"score": 7.5}, True),
        ({"score": {"$gte": 7.5, "$lt": 8}}, True),
        ({"score": {"$gt": 7.5}}, False),
        ({"metadata.cpu_usage": {"$gt": 90}}, True),
        ({"metadata.cpu_usage": {"$lte": 93.5}}, True),
        ({"metadata.cpu_usage": {"$lt": 93.5}}, False),
        ({"metadata.cores": 8.0}, True),  # 8 and 8.0 are the same number
        ({"metadata.region": {"$in": ["eu-west", "us-east"]}}, True),
        ({"metadata.region": {"$nin": ["eu-west", "us-east"]}}, False),
        ({"metadata.nested.level.value": {"$gte": 3}}, True),
        ({"metadata.healthy": False}, True),
        ({"tags": {"$contains": "prod"}}, True),
        ({"tags": {"$contains": "pro"}}, False),  # an element, not a substring
        ({"title": {"$contains": "CPU"}}, True),
        ({"title": {"$contains": "cpu"}}, False),
        ({"metadata.disks": {"$contains": "/var"}}, True),
        ({"metadata.region": {"$contains": "west"}}, True),
        ({"host": {"$regex": "web-server-.*"}}, True),
        ({"host": {"$regex": "^server"}}, False),  # unanchored search, but ^ anchors
        ({"title": {"$regex": "(?i)high cpu"}}, True),
        ({"metadata.region": {"$regex": "^eu-"}}, True),
        ({"metadata.cpu_usage": {"$exists": True}}, True),
        ({"metadata.absent": {"$exists": False}}, True),
        ({"metadata.nothing": {"$exists": False}}, True),  # null counts as absent
        ({"service": {"$exists": False}}, True),
        ({"host": {"$exists": True}}, True),
    ],
)
def test_each_operator(conditions: dict[str, Any], expected: bool) -> None:
    assert matches(conditions, EVENT) is expected


@pytest.mark.parametrize(
    "conditions",
    [
        {"metadata.numeric_text": {"$gt": 10}},  # text is not a number, however it reads
        {"metadata.healthy": 0},  # false is not 0
        {"metadata.cores": True},
        {"metadata.cores": "8"},
        {"metadata.cores": {"$in": ["8", True]}},
        {"metadata.cpu_usage": {"$regex": "93"}},  # a number is not text
        {"metadata.disks": {"$gt": 1}},
        {"metadata.nested": {"$gte": 0}},
        {"metadata.nested": "x"},
        {"metadata.cores": {"$contains": "8"}},
        {"metadata.disks.0": "/"},  # paths walk objects only, never lists
        {"metadata.region.inner": "x"},  # a path through text
    ],
)
def test_a_type_mismatch_is_no_match(conditions: dict[str, Any]) -> None:
    assert matches(conditions, EVENT) is False


@pytest.mark.parametrize(
    "conditions",
    [
        {"metadata.absent": 1},
        {"metadata.absent": {"$gt": 0}},
        {"metadata.absent": {"$lt": 0}},
        {"metadata.absent": {"$in": [1, "x"]}},
        {"metadata.absent": {"$regex": ""}},
        {"metadata.absent": {"$contains": ""}},
        {"metadata.absent": {"$exists": True}},
        {"metadata.absent.deeper": "x"},
        {"metadata.nothing": {"$gte": 0}},
        {"service": {"$regex": ".*"}},
        {"service": {"$contains": ""}},
        {"service": {"$in": ["nginx"]}},
    ],
)
def test_a_missing_path_is_no_match(conditions: dict[str, Any]) -> None:
    assert matches(conditions, EVENT) is False


@pytest.mark.parametrize(
    "conditions",
    [
        {"metadata.absent": {"$ne": 1}},
        {"metadata.absent": {"$nin": [1]}},
        {"metadata.numeric_text": {"$not": {"$gt": 10}}},
        {"$not": {"metadata.absent": {"$gt": 0}}},
    ],
)
def test_negations_match_what_the_positive_form_does_not(conditions: dict[str, Any]) -> None:
    assert matches(conditions, EVENT) is True


_LEVELS = ["critical", "high", "medium", "low", "info"]


@pytest.mark.parametrize(
    ("level", "gt", "gte", "lt", "lte"),
    [
        ("critical", [], _LEVELS[:1], _LEVELS[1:], _LEVELS),
        ("medium", ["critical", "high"], ["critical", "high", "medium"], ["low", "info"], _LEVELS[2:]),
        ("info", _LEVELS[:4], _LEVELS, [], ["info"]),
    ],
)
def test_severity_compares_by_rank_not_alphabetically(
    level: str, gt: list[str], gte: list[str], lt: list[str], lte: list[str]
) -> None:
    for operator, expected in (("$gt", gt), ("$gte", gte), ("$lt", lt), ("$lte", lte)):
        selected = [
            s.value for s in Severity if matches({"severity": {operator: level}}, make_event(severity=s))
        ]
        assert selected == expected, operator


def test_logical_operators() -> None:
    assert matches({"$and": [{"severity": "high"}, {"metadata.cores": 8}]}, EVENT)
    assert not matches({"$and": [{"severity": "high"}, {"metadata.cores": 4}]}, EVENT)
    assert matches({"$or": [{"severity": "low"}, {"metadata.cores": 8}]}, EVENT)
    assert not matches({"$or": [{"severity": "low"}, {"metadata.cores": 4}]}, EVENT)
    assert matches({"$not": {"severity": "low"}}, EVENT)
    assert not matches({"$not": {"severity": "high", "host": {"$regex": "web"}}}, EVENT)
    assert matches({"score": {"$not": {"$gt": 9}}}, EVENT)
    # Several keys in one object, and several operators on one field, must all hold.
    assert not matches({"severity": "high", "state": "resolved"}, EVENT)
    assert not matches({"metadata.cpu_usage": {"$gt": 90, "$lt": 93}}, EVENT)
    assert matches(
        {"$or": [{"$and": [{"score": {"$gt": 7}}, {"$not": {"tags": {"$contains": "dev"}}}]}]}, EVENT
    )


def test_empty_conditions_match_every_event() -> None:
    assert matches({}, EVENT)
    assert matches({}, make_event(severity=Severity.INFO, state=EventState.RESOLVED))


def test_the_spec_example() -> None:
    conditions = {
        "event_type": "threshold_breach",
        "severity": ["critical", "high"],
        "metadata.cpu_usage": {"$gt": 90},
        "host": {"$regex": "web-server-.*"},
    }
    assert matches(conditions, EVENT)
    assert not matches(conditions, make_event(host="web-server-01", metadata={"cpu_usage": 85}))
    assert not matches(conditions, make_event(host="db-01", metadata={"cpu_usage": 95}))


def test_matching_never_raises_on_odd_values() -> None:
    odd = make_event(
        title="\ud800 lone surrogate",
        metadata={"x": float("nan"), "y": [None, {"a": 1}], "z": {"": 1}, "big": 10**30},
    )
    for conditions in (
        {"title": {"$regex": "lone"}},
        {"metadata.x": {"$gt": 0}},
        {"metadata.x": {"$lte": 0}},
        {"metadata.y": {"$contains": 1}},
        {"metadata.y": {"$in": [1]}},
        {"metadata.big": {"$gt": 1e29}},
    ):
        compile_conditions(conditions).matches(odd)
        compile_conditions(conditions).explain(odd)
    assert matches({"title": {"$regex": "lone"}}, odd)
    assert not matches({"metadata.x": {"$gt": 0}}, odd)  # NaN is neither above nor below anything
    assert matches({"metadata.big": {"$gt": 1e29}}, odd)


def test_explain_reports_each_leaf_and_why() -> None:
    condition = compile_conditions(
        {
            "severity": {"$gte": "high"},
            "metadata.numeric_text": {"$gt": 90},
            "metadata.absent": 1,
            "host": {"$regex": "^db-"},
        }
    )
    explanation = condition.explain(EVENT)
    assert not explanation.matched
    by_path = {leaf.path: leaf for leaf in explanation.leaves}
    assert list(by_path) == ["severity", "metadata.numeric_text", "metadata.absent", "host"]
    assert by_path["severity"].matched and by_path["severity"].reason is None
    assert by_path["severity"].actual == "high" and by_path["severity"].operand == "high"
    assert by_path["metadata.numeric_text"].reason == "text value, needs number"
    assert by_path["metadata.numeric_text"].actual == "95"
    assert by_path["metadata.absent"].reason == "missing" and by_path["metadata.absent"].actual is None
    assert by_path["host"].reason == "false" and by_path["host"].operator == "$regex"


def test_regex_searches_through_re2_s_own_match_and_agrees_with_its_search() -> None:
    from opsresponder.rules.conditions.regex import Regex

    texts = ["", "Request timeout", "x Login failed", "OUT OF MEMORY", "café", "\udcff lone", "a" * 500]
    for pattern in [
        "timeout|refused",
        "^Login failed",
        "(?i)out of (memory|disk space)",
        "",
        "^$",
        "é",
        "a{3}$",
    ]:
        regex = Regex(pattern)
        assert regex._search.__name__ == "direct"  # the fast path is in use with this re2
        for text in texts:
            data = text.encode("utf-8", "surrogatepass")
            assert regex.search(text) is (regex._compiled.search(data) is not None), (pattern, text)
    assert Regex("timeout").search("Request timeout") and not Regex("^timeout").search("Request timeout")
