"""What the expression language refuses at validation time, each with the reason and the column."""

from __future__ import annotations

import pytest

from opsresponder.rules.expressions import EVENT_SCOPE, Expression, ExpressionError, execution_scope

SCOPE = execution_scope(["diagnostic_cpu"])


def refusal(text: str, variables: frozenset[str] | None = frozenset({"limit"})) -> str:
    with pytest.raises(ExpressionError) as caught:
        Expression.parse(text, SCOPE, variables)
    return str(caught.value)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        # Function calls, CEL macros and methods.
        ("size(diagnostic_cpu.result) > 1", "column 5: function calls are not allowed (size(...))"),
        ("has(diagnostic_cpu.result.cpu)", "function calls are not allowed (has(...))"),
        ("diagnostic_cpu.result.exists(x, x > 1)", "function calls are not allowed"),
        ("diagnostic_cpu.result.all(x, x > 1)", "function calls are not allowed"),
        ("diagnostic_cpu.error.matches('.*')", "function calls are not allowed"),
        ("diagnostic_cpu.error.startsWith('a')", "function calls are not allowed"),
        ("int(diagnostic_cpu.result.cpu) > 1", "function calls are not allowed"),
        ("'abc'.size() == 3", "attribute access on \"'abc'\"... is not allowed"),
        ("[1, 2].map(x, x)", "attribute access on '['... is not allowed"),
        ("(diagnostic_cpu).status == 'x'", "attribute access on '('... is not allowed"),
        ("__import__('os').system('id')", "function calls are not allowed"),
        # Imports and other statements.
        ("import os", "'import' is a reserved word"),
        ("package x", "'package' is a reserved word"),
        ("let x", "'let' is a reserved word"),
        # Attribute access beyond dotted names on known roots.
        ("os.system == 1", "unknown name 'os'"),
        ("diagnostic_cpu.__class__ == 1", "'diagnostic_cpu' has no field '__class__'"),
        ("diagnostic_cpu.status.length == 1", "'diagnostic_cpu.status' has no fields"),
        ("event.metadata.a[0] == 1", "indexing is not allowed"),
        ("any_action_failed.x", "'any_action_failed' has no fields"),
        # Anything else that is not the language.
        ("diagnostic_cpu.result.cpu + 1 > 2", "'+' is not part of the expression language"),
        ("diagnostic_cpu.result.cpu * 2 > 2", "'*' is not part of the expression language"),
        ("any_action_failed ? true : false", "'?' is not part of the expression language"),
        ("{'a': 1} == {'a': 1}", "'{' is not part of the expression language"),
        ("1 < 2 < 3", "comparisons do not chain"),
        ("[any_action_failed] == [true]", "list items must be literals or placeholders"),
        ("any_action_failed ==", "expected a value, a name or (, found the end"),
        ("(any_action_failed", "expected ')'"),
        ("any_action_failed true", "expected an operator"),
        ("'unterminated", "unterminated string"),
        ("'\\x41' == 'A'", "unknown escape"),
        ("b'bytes' == 1", "unknown name 'b'"),
        ("", "the expression is empty"),
        ("   ", "the expression is empty"),
        ("9223372036854775808 > 1", "does not fit a 64-bit integer"),
        ("1e999 > 1", "out of range"),
        ("true == in", "'in' is a keyword, not a name"),
        ("{{ nope }} == 1", "unknown variable 'nope' (variables: limit)"),
        ("{{ limit } == 1", "a placeholder is written {{ variable_name }}"),
        ("{{ limit }}.x == 1", "attribute access on '{{ limit }}'... is not allowed"),
        ("x" * 2001, "longer than 2000 characters"),
        ("!" * 40 + "true", "nested deeper than 32 levels"),
        ("(" * 40 + "true" + ")" * 40, "nested deeper than 32 levels"),
    ],
)
def test_refused(text: str, reason: str) -> None:
    assert reason in refusal(text)


def test_placeholders_where_no_variables_exist() -> None:
    assert "placeholders ({{ name }}) are not allowed here" in refusal("{{ limit }} == 1", None)


def test_event_scope_names_event_fields() -> None:
    with pytest.raises(ExpressionError, match="unknown name 'cpu_usage'"):
        Expression.parse("cpu_usage > 90", EVENT_SCOPE)
    with pytest.raises(ExpressionError, match="'severity' has no fields"):
        Expression.parse("severity.name == 'high'", EVENT_SCOPE)


def test_a_variable_without_a_value_cannot_be_bound() -> None:
    expression = Expression.parse("diagnostic_cpu.result.cpu < {{ limit }}", SCOPE, frozenset({"limit"}))
    with pytest.raises(ExpressionError, match="variable 'limit' has no value"):
        expression.bind({})
    with pytest.raises(ExpressionError, match="not a finite number"):
        expression.bind({"limit": float("nan")})
