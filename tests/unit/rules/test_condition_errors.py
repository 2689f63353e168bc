"""`compile_conditions` refuses invalid conditions with the JSON path of the problem and the reason."""

from __future__ import annotations

from typing import Any

import pytest

from opsresponder.core.errors import OpsResponderError
from opsresponder.rules.conditions import MAX_DEPTH, MAX_NODES, ConditionError, compile_conditions


@pytest.mark.parametrize(
    ("conditions", "path", "reason"),
    [
        ({"severity": {"$gtt": "high"}}, "conditions.severity.$gtt", "unknown operator $gtt"),
        ({"$nor": []}, "conditions.$nor", "unknown operator $nor"),
        ({"hostname": "a"}, "conditions.hostname", "unknown field 'hostname'"),
        ({"metadata": {"cpu": 1}}, "conditions.metadata", "unknown field 'metadata'"),
        ({"metadata..cpu": 1}, "conditions.metadata..cpu", "unknown field"),
        ({"$and": [{"x": 1}]}, "conditions.$and[0].x", "unknown field 'x'"),
        ({"$and": [{}, {"metadata.cpu": {"$gt": "90"}}]}, "conditions.$and[0]", "empty object"),
        ({"$and": [{"severity": "high"}, {"metadata.cpu": {"$gt": "90"}}]},
         "conditions.$and[1].metadata.cpu.$gt", "$gt needs a number, not text"),
        ({"metadata.cpu": {"$gt": True}}, "conditions.metadata.cpu.$gt", "needs a number, not boolean"),
        ({"score": {"$lt": None}}, "conditions.score.$lt", "needs a number"),
        ({"host": {"$gt": 5}}, "conditions.host.$gt", "$gt needs a number field, severity"),
        ({"severity": {"$gte": "urgent"}}, "conditions.severity.$gte", "needs a level"),
        ({"severity": {"$gte": 3}}, "conditions.severity.$gte", "needs a level"),
        ({"severity": "urgent"}, "conditions.severity", "'urgent' is not a severity"),
        ({"severity": ["high", "urgent"]}, "conditions.severity[1]", "'urgent' is not a severity"),
        ({"state": "open"}, "conditions.state", "is not a state"),
        ({"host": 5}, "conditions.host", "host holds text, not number"),
        ({"score": "high"}, "conditions.score", "score holds number, not text"),
        ({"host": None}, "conditions.host", 'use {"$exists": false}'),
        ({"metadata.a": {"$eq": {"b": 1}}}, "conditions.metadata.a.$eq", "not object"),
        ({"metadata.a": {"$in": "x"}}, "conditions.metadata.a.$in", "$in needs a list, not text"),
        ({"metadata.a": {"$nin": 3}}, "conditions.metadata.a.$nin", "$nin needs a list, not number"),
        ({"metadata.a": {"$in": [1, [2]]}}, "conditions.metadata.a.$in[1]", "not list"),
        ({"host": {"$regex": "(web"}}, "conditions.host.$regex",
         "invalid regular expression: missing ): (web"),
        ({"host": {"$regex": "(a)\\1"}}, "conditions.host.$regex", "invalid escape sequence: \\1"),
        ({"host": {"$regex": "(?=a)"}}, "conditions.host.$regex", "invalid perl operator: (?="),
        ({"host": {"$regex": 5}}, "conditions.host.$regex", "needs a pattern (text)"),
        ({"host": {"$exists": "yes"}}, "conditions.host.$exists", "needs true or false"),
        ({"tags": "prod"}, "conditions.tags", "tags is a list of text: use $contains"),
        ({"tags": {"$contains": 1}}, "conditions.tags.$contains", "tags holds text, not number"),
        ({"score": {"$regex": "1"}}, "conditions.score.$regex", "does not apply to score"),
        ({"$and": []}, "conditions.$and", "non-empty list"),
        ({"$or": {"host": "a"}}, "conditions.$or", "non-empty list"),
        ({"$or": ["host"]}, "conditions.$or[0]", "a condition is an object, not text"),
        ({"$not": {}}, "conditions.$not", "non-empty condition object"),
        ({"host": {"$not": "a"}}, "conditions.host.$not", "needs an object of operators"),
        ({"host": {"$eq": "a", "sub": 1}}, "conditions.host.sub", "only operators"),
    ],
)  # fmt: skip
def test_refusals_name_the_path_and_the_reason(conditions: dict[str, Any], path: str, reason: str) -> None:
    with pytest.raises(ConditionError) as caught:
        compile_conditions(conditions)
    assert caught.value.path == path
    assert reason in caught.value.reason
    assert str(caught.value) == f"{path}: {caught.value.reason}"
    assert isinstance(caught.value, OpsResponderError)


def test_conditions_must_be_an_object() -> None:
    with pytest.raises(ConditionError, match=r"^conditions: conditions are an object, not list"):
        compile_conditions([{"host": "a"}])  # type: ignore[arg-type]


def test_nesting_deeper_than_the_limit_is_refused() -> None:
    def nested(levels: int) -> dict[str, Any]:
        doc: dict[str, Any] = {"host": "a"}
        for _ in range(levels - 1):
            doc = {"$not": doc}
        return doc

    compile_conditions(nested(MAX_DEPTH - 1))
    with pytest.raises(ConditionError, match=f"nested deeper than {MAX_DEPTH} levels"):
        compile_conditions(nested(MAX_DEPTH + 1))
    # Far deeper than Python's recursion limit: refused at the limit, not by a RecursionError.
    with pytest.raises(ConditionError):
        compile_conditions(nested(100_000))


def test_more_nodes_than_the_limit_are_refused() -> None:
    compile_conditions({"$or": [{"host": f"h{i}"} for i in range(MAX_NODES - 1)]})
    with pytest.raises(ConditionError, match=f"more than {MAX_NODES} conditions") as caught:
        compile_conditions({"$or": [{"host": f"h{i}"} for i in range(MAX_NODES)]})
    assert caught.value.path == f"conditions.$or[{MAX_NODES - 1}].host"
    # List items count: one $in with a huge list is as much work as many conditions.
    with pytest.raises(ConditionError, match="more than"):
        compile_conditions({"host": {"$in": [f"h{i}" for i in range(MAX_NODES)]}})
