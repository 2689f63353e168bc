"""SQL over ``events.events`` for a metadata path: jsonb, with checks so no stored value makes it fail."""

from __future__ import annotations

from collections.abc import Callable

from opsresponder.rules.conditions.fields import Path
from opsresponder.rules.sql import WhereClause


def column_sql(path: Path, where: WhereClause, body: Callable[[str], str]) -> str:
    """A two-valued expression: `body` applied to the jsonb at `path`, false where the path is missing.

    ``#>`` also walks into arrays when a key is a number (``metadata.disks.0``), where the Python side
    (like the language) only walks objects; so every step above the last must be an object.
    """
    keys = list(path.keys)
    value = f"(metadata #> {where.param(keys)}::text[])"
    guards = [
        f"jsonb_typeof(metadata #> {where.param(keys[:depth])}::text[]) = 'object'"
        for depth in range(1, len(keys))
    ]
    if not guards:
        return f"COALESCE({body(value)}, false)"
    # CASE, not AND: PostgreSQL may evaluate AND's operands in any order, CASE's branches it does not.
    return f"COALESCE(CASE WHEN {' AND '.join(guards)} THEN {body(value)} ELSE false END, false)"
