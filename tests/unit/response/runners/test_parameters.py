"""Parameter checks: strict types, rendered text, and every refusal naming the parameter."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsresponder.response.runners.parameters import MAX_VALUE_CHARS, ParameterError, check_parameters
from opsresponder.response.runners.results import structured
from opsresponder.rules.templates import Script
from opsresponder.rules.templates.scripts import ScriptParameter

SCRIPT = Script(
    id=1,
    name="demo",
    risk_level="low",
    command=["/bin/true"],
    parameters=[
        ScriptParameter(name="path", type="string", required=True),
        ScriptParameter(name="count", type="integer"),
        ScriptParameter(name="ratio", type="float"),
        ScriptParameter(name="force", type="boolean"),
        ScriptParameter(name="names", type="list"),
    ],
)


def test_values_are_rendered_per_type_in_declaration_order() -> None:
    values = {"names": ["a", 1, None], "force": False, "ratio": 2, "count": -3, "path": "/srv/data"}
    assert check_parameters(SCRIPT, values) == {
        "path": "/srv/data",
        "count": "-3",
        "ratio": "2.0",
        "force": "false",
        "names": '["a",1,null]',
    }
    assert list(check_parameters(SCRIPT, values)) == ["path", "count", "ratio", "force", "names"]
    assert check_parameters(SCRIPT, {"path": "x", "force": True, "ratio": 0.25}) == {
        "path": "x",
        "ratio": "0.25",
        "force": "true",
    }


@pytest.mark.parametrize(
    ("values", "name", "reason"),
    [
        ({}, "path", "is required"),
        (
            {"path": "x", "shell": "y"},
            "shell",
            "is not a parameter of demo (known: path, count, ratio, force, names)",
        ),
        ({"path": "x", "count": "12"}, "count", "must be an integer, not string"),
        ({"path": "x", "count": True}, "count", "must be an integer, not boolean"),
        ({"path": "x", "count": 1.0}, "count", "must be an integer, not float"),
        ({"path": "x", "ratio": "0.5"}, "ratio", "must be a float, not string"),
        ({"path": "x", "ratio": False}, "ratio", "must be a float, not boolean"),
        ({"path": "x", "ratio": float("nan")}, "ratio", "must be a finite number"),
        ({"path": "x", "ratio": 10**400}, "ratio", "must be a finite number"),
        ({"path": "x", "force": "true"}, "force", "must be a boolean, not string"),
        ({"path": "x", "force": 1}, "force", "must be a boolean, not integer"),
        ({"path": "x", "names": "a,b"}, "names", "must be a list, not string"),
        ({"path": None}, "path", "must be a string, not null"),
        ({"path": 5}, "path", "must be a string, not integer"),
        ({"path": "a\x00b"}, "path", "contains a NUL byte"),
        ({"path": "x" * (MAX_VALUE_CHARS + 1)}, "path", f"is longer than {MAX_VALUE_CHARS} characters"),
        ({"path": "x", "names": [object()]}, "names", "is not a list of JSON values"),
    ],
)
def test_refusals(values: dict[str, Any], name: str, reason: str) -> None:
    with pytest.raises(ParameterError) as caught:
        check_parameters(SCRIPT, values)
    assert caught.value.name == name and caught.value.reason.startswith(reason)
    assert name in str(caught.value)


def test_a_nul_inside_a_list_is_escaped_by_json() -> None:
    assert check_parameters(SCRIPT, {"path": "x", "names": ["\x00"]})["names"] == '["\\u0000"]'


def test_the_longest_accepted_value() -> None:
    assert check_parameters(SCRIPT, {"path": "x" * MAX_VALUE_CHARS})["path"] == "x" * MAX_VALUE_CHARS


json_leaves = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
)
any_value = st.recursive(json_leaves, lambda inner: st.lists(inner, max_size=3), max_leaves=8)


@given(st.dictionaries(st.sampled_from(["path", "count", "ratio", "force", "names"]), any_value))
def test_any_values_are_accepted_exactly_when_they_fit(values: dict[str, Any]) -> None:
    def fits(name: str, value: Any) -> bool:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        kind = {
            "path": isinstance(value, str),
            "count": isinstance(value, int) and not isinstance(value, bool),
            "ratio": number,
            "force": isinstance(value, bool),
            "names": isinstance(value, list),
        }[name]
        return kind

    try:
        rendered = check_parameters(SCRIPT, values)
    except ParameterError as e:
        assert e.name in values or e.name == "path"
        value = values.get(e.name)
        assert (
            e.name not in values
            or not fits(e.name, value)
            or "\x00" in json.dumps(value)
            or "\\u0000" in json.dumps(value)
            or len(json.dumps(value)) > MAX_VALUE_CHARS
        )
        return
    assert "path" in values and set(rendered) == set(values)
    for name, text in rendered.items():
        assert fits(name, values[name]) and "\x00" not in text and len(text) <= MAX_VALUE_CHARS
        value = values[name]
        if name == "ratio":
            assert json.loads(text) == float(value)
        elif name in ("count", "names"):
            assert json.loads(text) == value  # the text means the value
        elif name == "force":
            assert text == ("true" if value else "false")
        else:
            assert text == value


@pytest.mark.parametrize(
    ("body", "data", "metrics"),
    [
        (b'{"a": 1, "b": true, "c": "x", "metrics": {"a": 2.5, "d": 3}}', ..., {"a": 2.5, "d": 3.0}),
        (b'  {"x": 1}\n', {"x": 1}, {"x": 1.0}),
        (b"[1, 2]", None, {}),
        (b'{"x": 1', None, {}),
        (b'{"x": "\x80"}', None, {}),
        (b"hello", None, {}),
        (b"", None, {}),
    ],
)
def test_structured_output(body: bytes, data: Any, metrics: dict[str, float]) -> None:
    found, numbers = structured(body)
    assert found == (json.loads(body) if data is ... else data)
    assert numbers == metrics
