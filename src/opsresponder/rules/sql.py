"""WHERE clauses built with numbered parameters, the SQL form that filters compile to."""

from __future__ import annotations

from typing import Any


class WhereClause:
    """Collects ``AND``-ed conditions and their parameters (``$1``, ``$2``... in order)."""

    def __init__(self) -> None:
        self.args: list[Any] = []
        self._clauses: list[str] = []

    def add(self, template: str, value: Any) -> None:
        """Add a condition; ``{}`` in `template` becomes the parameter holding `value`."""
        self.args.append(value)
        self._clauses.append(template.format(f"${len(self.args)}"))

    def param(self, value: Any) -> str:
        """Add a parameter without a condition and return its placeholder (for conditions built whole)."""
        self.args.append(value)
        return f"${len(self.args)}"

    def add_condition(self, condition: str) -> None:
        """Add a condition without a parameter."""
        self._clauses.append(condition)

    def sql(self) -> str:
        return " WHERE " + " AND ".join(self._clauses) if self._clauses else ""
