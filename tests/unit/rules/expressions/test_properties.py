"""Property tests: random text never crashes the validator; what it accepts only ever runs allowed nodes;
any string or number survives the trip into a CEL literal unchanged."""

from __future__ import annotations

import math
from typing import Any

import cel
from hypothesis import given, settings
from hypothesis import strategies as st

from opsresponder.rules.expressions import (
    ALLOWED_FUNCTIONS,
    Expression,
    ExpressionError,
    execution_scope,
)
from opsresponder.rules.expressions.render import literal
from opsresponder.rules.expressions.tokens import OPERATORS

SCOPE = execution_scope(["check"])
VARIABLES = frozenset({"limit", "hosts"})
VALUES: dict[str, Any] = {"limit": 90.0, "hosts": ["a", "b"]}
ROOT_NAMES = sorted(SCOPE.roots)

# Text built from the language's own pieces and from CEL's: much likelier to get past the tokenizer than
# random characters, so the parser and the second lock are exercised, not only the first refusal.
_PIECES = st.sampled_from(
    [
        *OPERATORS,
        *ROOT_NAMES,
        "check.result.cpu",
        "check.status",
        "event.metadata.x",
        "in",
        "not",
        "and",
        "or",
        "true",
        "null",
        "1",
        "2.5",
        "'x'",
        '"y"',
        "{{ limit }}",
        "{{ hosts }}",
        "size",
        "has",
        "exists",
        "map",
        "all",
        "filter",
        "import",
        "dyn",
        "int",
        "type",
        " ? ",
        " : ",
        "+",
        "*",
        "{",
        "}",
        ":",
        ";",
        "`",
        "\\",
        " ",
    ]
)
_PIECE_TEXT = st.lists(_PIECES, max_size=25).map("".join)


@settings(max_examples=1500, deadline=None)
@given(text=st.one_of(st.text(max_size=80), _PIECE_TEXT))
def test_the_validator_never_crashes_and_accepts_only_allowed_nodes(text: str) -> None:
    try:
        expression = Expression.parse(text, SCOPE, VARIABLES)
    except ExpressionError:
        return
    program = expression.bind(VALUES)  # an accepted expression always binds; CEL compiles it
    compiled = cel.compile(program.source)
    assert set(compiled.functions()) <= ALLOWED_FUNCTIONS, program.source
    assert set(compiled.variables()) <= set(ROOT_NAMES), program.source


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=500, deadline=None)
@given(text=_PIECE_TEXT, activation=st.dictionaries(st.sampled_from(ROOT_NAMES), _json, max_size=4))
def test_evaluation_never_raises(text: str, activation: dict[str, Any]) -> None:
    try:
        program = Expression.parse(text, SCOPE, VARIABLES).bind(VALUES)
    except ExpressionError:
        return
    outcome = program.evaluate(activation)
    assert isinstance(outcome.value, bool)
    assert outcome.value or outcome.reason is not None or outcome.value is False


@settings(max_examples=500, deadline=None)
@given(value=st.text() | st.integers(-(2**63), 2**63 - 1) | st.floats() | st.booleans() | st.none())
def test_a_literal_reads_back_as_the_same_value(value: Any) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        return
    if isinstance(value, str) and any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        return  # a lone surrogate is no Unicode text; CEL cannot hold it (nor can JSON from the API)
    assert cel.compile(f"x == {literal(value)}").execute({"x": value}) is True
