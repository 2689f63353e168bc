"""`ExpressionError`: an expression is refused at validation time; the message says where and why."""

from __future__ import annotations

from opsresponder.core.errors import OpsResponderError


class ExpressionError(OpsResponderError):
    """An expression that does not parse, or uses something the language refuses.

    Attributes:
        reason: what is wrong, with the column (1-based) where it is when one applies.
        column: that column, or None when the whole expression is concerned.
    """

    def __init__(self, reason: str, column: int | None = None) -> None:
        self.reason = reason if column is None else f"column {column}: {reason}"
        super().__init__(self.reason)
        self.column = column
