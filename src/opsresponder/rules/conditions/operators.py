"""The comparison operators: each checks its operand once and builds a leaf's test and SQL."""

from __future__ import annotations

import operator as op
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final

from opsresponder.core.event import Event
from opsresponder.rules.conditions.errors import ConditionError
from opsresponder.rules.conditions.fields import ENUM_VALUES, MISSING, SEVERITY_RANK, Kind, Path
from opsresponder.rules.conditions.nodes import Leaf, Predicate
from opsresponder.rules.conditions.regex import Regex
from opsresponder.rules.conditions.regex_sql import postgres_regex
from opsresponder.rules.conditions.sql import column_sql
from opsresponder.rules.conditions.values import is_number, is_scalar, json_type, same
from opsresponder.rules.sql import WhereClause

ORDER_OPERATORS: Final = {"$gt": op.gt, "$gte": op.ge, "$lt": op.lt, "$lte": op.le}
_SQL_ORDER: Final = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
OPERATORS: Final = frozenset(
    {"$eq", "$ne", "$in", "$nin", "$regex", "$exists", "$contains", "$not", *ORDER_OPERATORS}
)

# Which comparison operators each kind of field takes (`$not` is handled by the compiler).
_ALLOWED: Final[dict[Kind, frozenset[str]]] = {
    Kind.TEXT: frozenset({"$eq", "$ne", "$in", "$nin", "$regex", "$exists", "$contains"}),
    Kind.STATE: frozenset({"$eq", "$ne", "$in", "$nin", "$regex", "$exists", "$contains"}),
    Kind.SEVERITY: frozenset(
        {"$eq", "$ne", "$in", "$nin", "$regex", "$exists", "$contains", *ORDER_OPERATORS}
    ),
    Kind.NUMBER: frozenset({"$eq", "$ne", "$in", "$nin", "$exists", *ORDER_OPERATORS}),
    Kind.TAGS: frozenset({"$contains"}),
    Kind.METADATA: OPERATORS - {"$not"},
}
_OPERAND_TYPE: Final[dict[Kind, str]] = {
    Kind.TEXT: "text",
    Kind.STATE: "text",
    Kind.SEVERITY: "text",
    Kind.NUMBER: "number",
    Kind.TAGS: "text",
    Kind.METADATA: "text, number or boolean",
}


def build_leaf(path: Path, operator: str, operand: Any, at: str) -> Leaf:
    """The leaf for ``{path: {operator: operand}}``; `at` is the JSON path for error messages."""
    if operator not in _ALLOWED[path.kind]:
        raise ConditionError(at, _refusal(path, operator))
    if operator in ("$eq", "$ne"):
        leaf = _equal(path, operator, _scalar(path, operand, at))
    elif operator in ("$in", "$nin"):
        if not isinstance(operand, list):
            raise ConditionError(at, f"{operator} needs a list, not {json_type(operand)}")
        values = [_scalar(path, item, f"{at}[{i}]") for i, item in enumerate(operand)]
        leaf = _member(path, operator, values)
    elif operator in ORDER_OPERATORS:
        leaf = _order(path, operator, operand, at)
    elif operator == "$regex":
        leaf = _regex(path, operand, at)
    elif operator == "$exists":
        if not isinstance(operand, bool):
            raise ConditionError(at, f"$exists needs true or false, not {json_type(operand)}")
        leaf = _exists(path, operand)
    else:
        leaf = _contains(path, _scalar(path, operand, at))
    return leaf


def _refusal(path: Path, operator: str) -> str:
    if operator not in OPERATORS:
        return f"unknown operator {operator} (known: {', '.join(sorted(OPERATORS))})"
    if path.kind is Kind.TAGS:
        return f"{path.text} is a list of text: use $contains"
    if operator in ORDER_OPERATORS:
        return f"{operator} needs a number field, severity or a metadata path; {path.text} is text"
    return f"{operator} does not apply to {path.text}, which is a {path.kind.value}"


def _scalar(path: Path, value: Any, at: str) -> Any:
    """Check one comparison value against the field's kind."""
    if value is None:
        raise ConditionError(at, 'null is not a value to compare with; use {"$exists": false}')
    if not is_scalar(value):
        raise ConditionError(at, f"needs {_OPERAND_TYPE[path.kind]}, not {json_type(value)}")
    wanted = _OPERAND_TYPE[path.kind]
    if path.kind is not Kind.METADATA and json_type(value) != wanted:
        raise ConditionError(at, f"{path.text} holds {wanted}, not {json_type(value)}")
    allowed = ENUM_VALUES.get(path.kind)
    if allowed is not None and value not in allowed:
        raise ConditionError(at, f"{value!r} is not a {path.kind.value} ({', '.join(allowed)})")
    return value


def _needs(expected: str) -> Callable[[Any], str | None]:
    """The explanation of a mismatch for an operator that needs a value of the `expected` JSON type."""

    def needs(value: Any) -> str | None:
        actual = json_type(value)
        return None if actual == expected else f"{actual} value, needs {expected}"

    return needs


def _no_reason(value: Any) -> str | None:
    return None


def _equal(path: Path, operator: str, operand: Any) -> Leaf:
    negate = operator == "$ne"
    operand_type = json_type(operand)

    def test(value: Any) -> bool:
        return same(value, operand) is not negate

    fast: Predicate | None = None
    if path.kind is not Kind.METADATA:
        # A top-level field holds its one type or None, and the operand was checked to be that type (and
        # never null): plain == is the type-strict comparison.
        get = op.attrgetter(path.field)
        fast = (lambda event: get(event) != operand) if negate else (lambda event: get(event) == operand)

    def sql(where: WhereClause) -> str:
        return _equality_sql(path, where, operand, negate=negate, many=False)

    needs = _no_reason if negate else _needs(operand_type)
    return Leaf(path, operator, operand, test, needs, sql, fast=fast)


def _member(path: Path, operator: str, values: list[Any]) -> Leaf:
    negate = operator == "$nin"
    # Grouped by JSON type so that membership stays type-strict (Python's `True in {1}` is true).
    by_type: dict[str, frozenset[Any]] = {}
    for kind in {json_type(v) for v in values}:
        by_type[kind] = frozenset(v for v in values if json_type(v) == kind)

    def test(value: Any) -> bool:
        # Only text, numbers and booleans have a group; a list or object is in none (and not hashable).
        members = by_type.get(json_type(value))
        return (members is not None and value in members) is not negate

    fast: Predicate | None = None
    if path.kind is not Kind.METADATA:
        # As in `_equal`: one type per field, checked operands, and None is in no list.
        get = op.attrgetter(path.field)
        members = frozenset(values)
        fast = (lambda event: get(event) not in members) if negate else (lambda event: get(event) in members)

    def sql(where: WhereClause) -> str:
        return _equality_sql(path, where, values, negate=negate, many=True)

    return Leaf(path, operator, values, test, _no_reason, sql, fast=fast)


def _equality_sql(path: Path, where: WhereClause, value: Any, *, negate: bool, many: bool) -> str:
    """``= value`` (or ``= ANY(values)`` when `many`), two-valued, negated for $ne and $nin."""
    cast = {Kind.METADATA: "jsonb", Kind.NUMBER: "float8"}.get(path.kind, "text")
    placeholder = where.param(value)

    def compare(column: str) -> str:
        return f"{column} = ANY({placeholder}::{cast}[])" if many else f"{column} = {placeholder}::{cast}"

    if path.kind is Kind.METADATA:
        text = column_sql(path, where, compare)
    else:
        text = f"COALESCE({compare(path.field)}, false)"
    return f"(NOT {text})" if negate else text


def _order(path: Path, operator: str, operand: Any, at: str) -> Leaf:
    compare = ORDER_OPERATORS[operator]
    if path.kind is Kind.SEVERITY:
        # Severities compare by rank (critical > high > medium > low > info), never alphabetically.
        if operand not in SEVERITY_RANK:
            raise ConditionError(at, f"{operator} on severity needs a level ({', '.join(SEVERITY_RANK)})")
        bound = SEVERITY_RANK[operand]
        levels = sorted(level for level, rank in SEVERITY_RANK.items() if compare(rank, bound))

        def test_severity(value: Any) -> bool:
            rank = SEVERITY_RANK.get(value) if isinstance(value, str) else None
            return rank is not None and compare(rank, bound)

        def sql_severity(where: WhereClause) -> str:
            return f"severity = ANY({where.param(levels)}::text[])"

        allowed = frozenset(levels)
        get_severity = op.attrgetter("severity")

        def fast_severity(event: Event) -> bool:
            return get_severity(event) in allowed

        return Leaf(path, operator, operand, test_severity, _needs("text"), sql_severity, fast=fast_severity)
    if not is_number(operand) or not is_scalar(operand):
        raise ConditionError(at, f"{operator} needs a number, not {json_type(operand)}")

    def test(value: Any) -> bool:
        return is_number(value) and compare(value, operand)

    def sql(where: WhereClause) -> str:
        symbol = _SQL_ORDER[operator]
        if path.kind is Kind.NUMBER:
            return f"COALESCE({path.field} {symbol} {where.param(operand)}::float8, false)"
        # numeric, not float8: JSON numbers are exact in jsonb, and integers must not round. The CASE
        # guarantees the cast only ever sees a number, so no stored value can make the query fail.
        bound = Decimal(repr(operand)) if isinstance(operand, float) else Decimal(operand)
        return column_sql(
            path,
            where,
            lambda x: (
                f"CASE WHEN jsonb_typeof({x}) = 'number' "
                f"THEN ({x})::numeric {symbol} {where.param(bound)}::numeric ELSE false END"
            ),
        )

    fast: Predicate | None = None
    if path.kind is Kind.NUMBER:
        get = op.attrgetter(path.field)

        def fast(event: Event) -> bool:
            value = get(event)
            return value is not None and compare(value, operand)

    elif len(path.keys) == 1:
        fast = _metadata_threshold(path.keys[0], operator, operand)

    return Leaf(path, operator, operand, test, _needs("number"), sql, fast=fast)


def _metadata_threshold(key: str, operator: str, operand: Any) -> Predicate:
    """The common threshold (`metadata.cpu_usage > 90`) in one call instead of a getter and a test.

    A JSON number is exactly an int or a float: those compare with the operator inline (one variant per
    operator, as calling `compare` costs as much as the rest); any other value takes the general check
    (a bool or a subclass is no number here, as in `is_number`).
    """
    compare = ORDER_OPERATORS[operator]
    bound: float = operand

    def other(value: Any) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool) and compare(value, operand)

    def gt(event: Event) -> bool:
        metadata = event.metadata
        value: Any = metadata.get(key) if isinstance(metadata, dict) else None
        kind = type(value)
        if kind is float or kind is int:
            number: float = value
            return number > bound
        return value is not None and other(value)

    def ge(event: Event) -> bool:
        metadata = event.metadata
        value: Any = metadata.get(key) if isinstance(metadata, dict) else None
        kind = type(value)
        if kind is float or kind is int:
            number: float = value
            return number >= bound
        return value is not None and other(value)

    def lt(event: Event) -> bool:
        metadata = event.metadata
        value: Any = metadata.get(key) if isinstance(metadata, dict) else None
        kind = type(value)
        if kind is float or kind is int:
            number: float = value
            return number < bound
        return value is not None and other(value)

    def le(event: Event) -> bool:
        metadata = event.metadata
        value: Any = metadata.get(key) if isinstance(metadata, dict) else None
        kind = type(value)
        if kind is float or kind is int:
            number: float = value
            return number <= bound
        return value is not None and other(value)

    variants: dict[str, Predicate] = {"$gt": gt, "$gte": ge, "$lt": lt, "$lte": le}
    return variants[operator]


def _regex(path: Path, operand: Any, at: str) -> Leaf:
    if not isinstance(operand, str):
        raise ConditionError(at, f"$regex needs a pattern (text), not {json_type(operand)}")
    try:
        regex = Regex(operand)
    except ValueError as exc:
        raise ConditionError(at, f"invalid regular expression: {exc}") from None
    pushed = postgres_regex(operand)
    search = regex.search

    def test(value: Any) -> bool:
        return isinstance(value, str) and search(value)

    def sql(where: WhereClause) -> str | None:
        if pushed is None:
            return None
        if path.kind is Kind.METADATA:
            return column_sql(
                path,
                where,
                lambda x: f"(jsonb_typeof({x}) = 'string' AND ({x} #>> '{{}}') ~ {where.param(pushed)})",
            )
        return f"COALESCE({path.field} ~ {where.param(pushed)}, false)"

    fast: Predicate | None = None
    if path.kind is not Kind.METADATA:
        get = op.attrgetter(path.field)

        def fast(event: Event) -> bool:
            value = get(event)
            return isinstance(value, str) and search(value)

    return Leaf(path, "$regex", operand, test, _needs("text"), sql, regex=regex, fast=fast)


def _exists(path: Path, operand: bool) -> Leaf:
    def test(value: Any) -> bool:
        return (value is not MISSING) is operand

    def sql(where: WhereClause) -> str:
        if path.kind is Kind.METADATA:
            text = column_sql(path, where, lambda x: f"jsonb_typeof({x}) <> 'null'")
        else:
            text = f"({path.field} IS NOT NULL)"
        return text if operand else f"(NOT {text})"

    return Leaf(path, "$exists", operand, test, _no_reason, sql)


def _contains(path: Path, operand: Any) -> Leaf:
    is_text = isinstance(operand, str)

    def test(value: Any) -> bool:
        if isinstance(value, str):
            return is_text and operand in value
        if isinstance(value, list):
            return any(same(item, operand) for item in value)
        return False

    def needs(value: Any) -> str | None:
        return None if isinstance(value, str | list) else f"{json_type(value)} value, needs text or a list"

    def sql(where: WhereClause) -> str:
        if path.kind is Kind.TAGS:
            return f"COALESCE({where.param(operand)}::text = ANY(tags), false)"
        if path.kind is not Kind.METADATA:
            return f"COALESCE(strpos({path.field}, {where.param(operand)}::text) > 0, false)"
        element = where.param(operand)
        # Only a text operand can be a substring; on an array it is an element (jsonb's @> is type-strict).
        text_case = f"strpos({{x}} #>> '{{{{}}}}', {where.param(operand)}::text) > 0" if is_text else "false"
        return column_sql(
            path,
            where,
            lambda x: (
                f"CASE jsonb_typeof({x}) WHEN 'string' THEN {text_case.format(x=x)} "
                f"WHEN 'array' THEN {x} @> jsonb_build_array({element}::jsonb) ELSE false END"
            ),
        )

    fast: Predicate | None = None
    if path.kind is not Kind.METADATA:
        # A text field holds text or None, `tags` a list of text, and the operand was checked to be text.
        get = op.attrgetter(path.field)

        def fast(event: Event) -> bool:
            value = get(event)
            return value is not None and operand in value

    return Leaf(path, "$contains", operand, test, needs, sql, fast=fast)
