"""Property tests: whatever arrives as a body, reading a template answers a template or a TemplateError,
never another exception; and a template read back from its own JSON or YAML is the same template."""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import msgspec
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from opsresponder.rules.templates import TemplateError, read_template
from tests.unit.rules.templates.test_validation import CATALOG, SPEC

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
_PATHS = [
    ("id",),
    ("version",),
    ("variables", 0, "default"),
    ("variables", 1, "type"),
    ("actions", 0, "depends_on"),
    ("actions", 1, "depends_on", 0),
    ("actions", 2, "parameters"),
    ("actions", 2, "parameters", "max_processes"),
    ("actions", 3, "channels"),
    ("rollback_actions", 0, "condition"),
    ("success_criteria", 0),
    ("failure_criteria",),
    ("triggers", 0, "conditions", 1),
    ("actions", 0),
    ("actions",),
]


def _mutated(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(SPEC)
    target: Any = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


def _read(raw: bytes | str, fmt: Any) -> None:
    with contextlib.suppress(TemplateError):  # anything else fails the test
        read_template(raw, fmt, CATALOG)


@settings(max_examples=200, deadline=None)
@given(path=st.sampled_from(_PATHS), value=_json | st.text(max_size=60))
def test_a_mutated_template_is_read_or_refused(path: tuple[Any, ...], value: Any) -> None:
    doc = _mutated(path, value)
    _read(msgspec.json.encode(doc), "json")
    _read(yaml.safe_dump(doc), "yaml")


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_random_bytes_are_refused_cleanly(raw: bytes) -> None:
    _read(raw, "json")
    _read(raw, "yaml")


@settings(max_examples=50, deadline=None)
@given(description=st.text(max_size=40), timeout=st.integers(1, 10080), approval=st.booleans())
def test_round_trips(description: str, timeout: int, approval: bool) -> None:
    doc = _mutated(("description",), description)
    doc["actions"][0]["timeout_minutes"] = timeout
    doc["approval_required"] = approval
    try:
        template = read_template(msgspec.json.encode(doc), "json", CATALOG)
    except TemplateError:
        return  # a description over its bound, say
    assert read_template(msgspec.json.encode(template), "json", CATALOG) == template
    assert read_template(yaml.safe_dump(msgspec.to_builtins(template)), "yaml", CATALOG) == template
