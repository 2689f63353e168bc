"""Which `$regex` patterns are pushed down to PostgreSQL, and how they are spelled there."""

from __future__ import annotations

import pytest

from opsresponder.rules.conditions.regex_sql import postgres_regex


@pytest.mark.parametrize(
    ("pattern", "translated"),
    [
        ("web-server-.*", "web-server-[^\n]*"),  # RE2's `.` never matches a newline; PostgreSQL's does
        ("^db-[0-9]+$", "^db-[0-9]+$"),
        (r"a\.b|\(c\)", r"a\.b|\(c\)"),
        ("[^a-zA-Z_]", "[^a-zA-Z_]"),
    ],
)
def test_pushed_down(pattern: str, translated: str) -> None:
    assert postgres_regex(pattern) == translated


@pytest.mark.parametrize(
    "pattern",
    [
        r"\d+",  # class escapes differ (PostgreSQL's \w is Unicode-aware)
        r"\bword",  # \b is a backspace in PostgreSQL
        "(?i)web",  # flags
        "(?:a)",
        "a{2,3}",  # repeat limits differ
        "é",  # non-ASCII
        "[a-]",
        "[z-a]",
        "[a-Z]",
        "[]",
        "[[:alpha:]]",
        "a\\",
    ],
)
def test_left_to_re2(pattern: str) -> None:
    assert postgres_regex(pattern) is None
