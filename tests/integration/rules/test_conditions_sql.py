"""`Condition.to_sql` selects what `Condition.matches` accepts, checked against PostgreSQL.

Exactly the same events when ``sql_exact`` is true; otherwise at least them (the rest is left to Python).
"""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsresponder.core.event import Event
from opsresponder.rules.conditions import compile_conditions
from opsresponder.rules.conditions.regex import Regex
from opsresponder.rules.conditions.regex_sql import postgres_regex
from opsresponder.rules.sql import WhereClause
from tests.condition_docs import condition_docs, events
from tests.factories import make_event
from tests.integration.rules.selecting import selected_ids, stored


async def _select(pool: asyncpg.Pool, batch: list[Event], doc: dict[str, Any]) -> set[int]:
    where = WhereClause()
    compile_conditions(doc).to_sql(where)
    return await selected_ids(pool, batch, where)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=condition_docs, batch=st.lists(events(), min_size=1, max_size=8))
async def test_sql_selects_what_matches_accepts(
    db_pool: asyncpg.Pool, doc: dict[str, Any], batch: list[Event]
) -> None:
    rows = stored(batch)
    condition = compile_conditions(doc)
    expected = {e.id for e in rows if condition.matches(e)}
    selected = await _select(db_pool, rows, doc)
    if condition.sql_exact:
        assert selected == expected, (doc, [(e.id, e.metadata, e.host, e.title) for e in rows])
    else:
        assert selected >= expected, (doc, [(e.id, e.metadata, e.host, e.title) for e in rows])


@pytest.mark.parametrize(
    ("doc", "exact"),
    [
        ({"event_type": "threshold_breach", "severity": ["critical", "high"],
          "metadata.cpu_usage": {"$gt": 90}, "host": {"$regex": "web-server-.*"}}, True),
        ({"host": {"$regex": r"^web-\d+$"}}, False),
        ({"severity": "high", "host": {"$regex": r"^web-\d+$"}}, False),
        ({"$or": [{"severity": "high"}, {"host": {"$regex": r"\d"}}]}, False),
        ({"$not": {"host": {"$regex": r"\d"}}}, False),
        ({"$not": {"host": {"$regex": "web"}}}, True),
        ({}, True),
    ],
)  # fmt: skip
async def test_sql_exact_says_whether_all_of_the_condition_was_pushed_down(
    db_pool: asyncpg.Pool, doc: dict[str, Any], exact: bool
) -> None:
    assert compile_conditions(doc).sql_exact is exact
    rows = stored([make_event(host="web-server-1", metadata={"cpu_usage": 95}), make_event(host="db")])
    condition = compile_conditions(doc)
    selected = await _select(db_pool, rows, doc)
    # Whatever was dropped, the parameters still line up with the placeholders (the query ran) and no
    # matching event is lost.
    assert selected >= {e.id for e in rows if condition.matches(e)}


async def test_metadata_of_the_wrong_type_never_makes_the_query_fail(db_pool: asyncpg.Pool) -> None:
    rows = stored(
        [
            make_event(metadata={"cpu": "high"}),
            make_event(metadata={"cpu": {"value": 1}}),
            make_event(metadata={"cpu": [1, 2]}),
            make_event(metadata={"cpu": 95}),
            make_event(metadata={"disks": [{"free": 5}], "cpu": None}),
        ]
    )
    assert await _select(db_pool, rows, {"metadata.cpu": {"$gt": 90}}) == {4}
    assert await _select(db_pool, rows, {"metadata.cpu": {"$exists": False}}) == {5}
    # `#>` would walk into the list with the key "0"; the language walks objects only.
    assert await _select(db_pool, rows, {"metadata.disks.0.free": {"$gte": 0}}) == set()


_PATTERNS = [
    "a", "^a", "b$", "a|b", "^$", ".", "a.b", "[ab]+", "[^a]", "a?b*c", "(a|b)c", r"\.", "^[0-9]+$", "^",
    "$", "^(a|b)+$", "[a-c]x?", "x*", "a+?b", "(a|)b", "()", "a**", "a.*$", "[A-Z][a-z]", "b|$", r"\\",
    r"\(a\)", "^.$", "[^0-9_]", "- :/@", "(?i)a", r"\d", "a{2}", r"\bb", "[[:alpha:]]", "é",
]  # fmt: skip
_SUBJECTS = [
    "",
    "a",
    "b",
    "ab",
    "a\nb",
    "a\n",
    "\n",
    "ab\n",
    "A",
    "1",
    "a.c",
    "x",
    "aab",
    "(a)",
    "\\",
    "é",
    "- :/@",
]


async def test_pushed_down_patterns_agree_with_re2(db_pool: asyncpg.Pool) -> None:
    """Every pattern `postgres_regex` translates matches in PostgreSQL exactly the texts it matches in RE2."""
    pushed: list[tuple[str, str]] = []
    for pattern in _PATTERNS:
        try:
            Regex(pattern)
        except ValueError:
            continue  # RE2 refuses it (a**): such a pattern never reaches the translation
        translated = postgres_regex(pattern)
        if translated is not None:
            pushed.append((pattern, translated))
    assert len(pushed) > 25  # the translation must not quietly refuse everything
    rows = await db_pool.fetch(
        "SELECT p.i, s.j, s.subject ~ p.pattern AS matched "
        "FROM unnest($1::text[]) WITH ORDINALITY p(pattern, i) "
        "CROSS JOIN unnest($2::text[]) WITH ORDINALITY s(subject, j)",
        [translated for _, translated in pushed],
        _SUBJECTS,
    )
    for row in rows:
        pattern = pushed[row["i"] - 1][0]
        subject = _SUBJECTS[row["j"] - 1]
        assert row["matched"] is Regex(pattern).search(subject), (pattern, subject)
