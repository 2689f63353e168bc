"""Hypothesis strategies for rule conditions and the events they are tried on, and a reference evaluator.

Few values per field, so that conditions and events meet often enough to test both outcomes. Every event
can be stored in PostgreSQL (JSON-able metadata, no NaN, no NUL), so the same strategies serve the
Python property tests and the SQL agreement test.
"""

from __future__ import annotations

import re
from typing import Any

from hypothesis import strategies as st

from opsresponder.core.event import Event
from opsresponder.core.severity import Severity
from tests.factories import make_event

LEVELS = [s.value for s in Severity]
RANK = {"critical": 4, "high": 3, "medium": 2, "low": 1, "info": 0}
TEXTS = ["a", "b", "ab", "", "a\nb", "A", "1", "a.c"]
NUMBERS = [0, 1, 1.0, 2.5, -1, 100]
# Metadata values and operands: fewer, so that `true` meets `1` and "1" meets 1 often.
SCALARS = ["a", "ab", "1", "", 0, 1, 1.0, 2.5, True, False]
# Each pattern with its Python `re` spelling: `$` must not match before a final newline, as in RE2.
PATTERNS = {
    "a": "a", "^a": "^a", "b$": r"b\Z", "a|b": "a|b", "^$": r"^\Z", ".": ".", "a.b": "a.b", "[ab]+": "[ab]+",
    "[^a]": "[^a]", "a?b*c": "a?b*c", "(a|b)c": "(a|b)c", r"\.": r"\.", "^[0-9]+$": r"^[0-9]+\Z",
    "A": "A",
    # Not pushed down to PostgreSQL (escapes, flags, repeats): RE2 in Python only.
    r"\d": r"\d", "(?i)a": "(?i)a", "a{2}": "a{2}", r"\w+": r"\w+",
}  # fmt: skip
TEXT_FIELDS = ["event_type", "host", "title"]
METADATA_PATHS = ["metadata.a", "metadata.a.b", "metadata.c"]

_texts = st.sampled_from(TEXTS)
_numbers = st.sampled_from(NUMBERS)
_scalars = st.sampled_from(SCALARS)
_levels = st.sampled_from(LEVELS)
_order = st.sampled_from(["$gt", "$gte", "$lt", "$lte"])


def _ops(values: st.SearchStrategy[Any], order: st.SearchStrategy[Any] | None) -> st.SearchStrategy[Any]:
    """A field's value in a condition: a scalar, a list, or one or two operators."""
    single = [
        values,
        st.lists(values, max_size=3),
        st.builds(lambda op, v: {op: v}, st.sampled_from(["$eq", "$ne"]), values),
        st.builds(lambda op, v: {op: v}, st.sampled_from(["$in", "$nin"]), st.lists(values, max_size=3)),
    ]
    if order is not None:
        single.append(st.builds(lambda op, v: {op: v}, _order, order))
    one = st.one_of(single)
    # Two operators on one field (a range, say); a scalar or list half becomes $eq / $in.
    return one | st.tuples(one, one).map(_merge) | one.map(lambda v: {"$not": _as_ops(v)})


def _as_ops(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    return {"$in": value} if isinstance(value, list) else {"$eq": value}


def _merge(pair: tuple[Any, Any]) -> dict[str, Any]:
    first, second = (_as_ops(v) for v in pair)
    return {**second, **first}


def _extra(values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """$regex, $contains and $exists on a field that takes them."""
    return st.one_of(
        st.builds(lambda p: {"$regex": p}, st.sampled_from(list(PATTERNS))),
        st.builds(lambda v: {"$contains": v}, values),
        st.builds(lambda b: {"$exists": b}, st.booleans()),
    )


def _field(name: str) -> st.SearchStrategy[dict[str, Any]]:
    if name in TEXT_FIELDS:
        value = _ops(_texts, None) | _extra(_texts)
    elif name == "severity":
        value = _ops(_levels, _levels)
    elif name == "score":
        value = _ops(_numbers, _numbers) | st.builds(lambda b: {"$exists": b}, st.booleans())
    elif name == "tags":
        value = st.builds(lambda v: {"$contains": v}, _texts)
    else:
        value = _ops(_scalars, _numbers) | _extra(_scalars)
    return value.map(lambda v: {name: v})


leaf_docs = st.sampled_from([*TEXT_FIELDS, "severity", "score", "tags", *METADATA_PATHS]).flatmap(_field)


def _combine(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.builds(lambda cs: {"$and": cs}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda cs: {"$or": cs}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda c: {"$not": c}, children),
        # Several keys in one object; a repeated key keeps the last, as JSON decoding does.
        st.lists(children, min_size=2, max_size=3).map(lambda cs: {k: v for c in cs for k, v in c.items()}),
    )


condition_docs = st.recursive(leaf_docs, _combine, max_leaves=8)

_metadata_values = st.sampled_from([*SCALARS, None, ["a"], [1, "a"], [], [True], {"x": 1}])


@st.composite
def events(draw: st.DrawFn) -> Event:
    metadata: dict[str, Any] = {}
    for key in ("a", "c"):
        shape = draw(st.sampled_from(["missing", "value", "object"]))
        if shape == "value":
            metadata[key] = draw(_metadata_values)
        elif shape == "object":
            metadata[key] = draw(st.dictionaries(st.sampled_from(["b", "0"]), _metadata_values, max_size=2))
    return make_event(
        severity=Severity(draw(_levels)),
        event_type=draw(_texts),
        host=draw(st.none() | _texts),
        title=draw(_texts),
        score=draw(st.none() | _numbers.map(float)),
        tags=draw(st.lists(_texts, max_size=2)),
        metadata=metadata,
    )


# The reference evaluator: the language's rules written out plainly, independent of the compiler.

_ABSENT = object()


def reference(doc: dict[str, Any], event: Event) -> bool:
    return all(_key(key, value, event) for key, value in doc.items())


def _key(key: str, value: Any, event: Event) -> bool:
    if key == "$and":
        return all(reference(item, event) for item in value)
    if key == "$or":
        return any(reference(item, event) for item in value)
    if key == "$not":
        return not reference(value, event)
    return _field_holds(key, _lookup(event, key), value)


def _lookup(event: Event, key: str) -> Any:
    if not key.startswith("metadata."):
        found = getattr(event, key)
        return _ABSENT if found is None else found
    found = event.metadata
    for part in key.split(".")[1:]:
        if not isinstance(found, dict) or part not in found:
            return _ABSENT
        found = found[part]
    return _ABSENT if found is None else found


def _field_holds(key: str, actual: Any, spec: Any) -> bool:
    if isinstance(spec, list):
        spec = {"$in": spec}
    elif not isinstance(spec, dict):
        spec = {"$eq": spec}
    return all(_op(key, actual, op, operand) for op, operand in spec.items())


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "text" if isinstance(value, str) else "other"


def _equal(actual: Any, operand: Any) -> bool:
    return actual is not _ABSENT and _kind(actual) == _kind(operand) and actual == operand


def _op(key: str, actual: Any, op: str, operand: Any) -> bool:
    if op == "$not":
        return not _field_holds(key, actual, operand)
    if op == "$eq":
        return _equal(actual, operand)
    if op == "$ne":
        return not _equal(actual, operand)
    if op == "$in":
        return any(_equal(actual, item) for item in operand)
    if op == "$nin":
        return not any(_equal(actual, item) for item in operand)
    if op == "$exists":
        return (actual is not _ABSENT) is operand
    if op == "$regex":
        return isinstance(actual, str) and re.search(PATTERNS[operand], actual) is not None
    if op == "$contains":
        if isinstance(actual, str):
            return isinstance(operand, str) and operand in actual
        return isinstance(actual, list) and any(_equal(item, operand) for item in actual)
    if key == "severity":
        actual, operand = RANK.get(actual, -1), RANK[operand]
    elif _kind(actual) != "number":
        return False
    outcome: bool = {"$gt": actual > operand, "$gte": actual >= operand, "$lt": actual < operand,
                     "$lte": actual <= operand}[op]  # fmt: skip
    return outcome
