"""`ConditionError`: a rule's conditions cannot be compiled; the message names where and why."""

from __future__ import annotations

from opsresponder.core.errors import OpsResponderError


class ConditionError(OpsResponderError):
    """Invalid conditions. ``path`` is the JSON path of the problem (``conditions.$and[1].host.$regex``)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
