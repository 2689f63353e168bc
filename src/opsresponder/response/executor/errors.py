"""The executor's refusals, which the API maps to status codes."""

from __future__ import annotations

from opsresponder.core.errors import OpsResponderError


class ExecutionNotFound(OpsResponderError):
    """No execution has this id (404)."""


class ExecutionStateError(OpsResponderError):
    """The execution's state does not allow the change asked (409).

    Attributes:
        status: the execution's status when it was refused.
    """

    def __init__(self, message: str, status: str | None) -> None:
        super().__init__(message)
        self.status = status
