"""Errors of the pipeline package."""

from __future__ import annotations

from opsresponder.core.errors import OpsResponderError


class PipelineError(OpsResponderError):
    """Root of pipeline errors."""


class IntakeClosedError(PipelineError):
    """Raised by `Intake.put` once shutdown has begun."""


class StageError(PipelineError):
    """A pipeline stage raised on a batch (a bug); the batch was not stored. Logged with the traceback.

    ``request_id`` is in that log line, so a caller's answer can point to it.
    """

    def __init__(self, message: str, request_id: str = "") -> None:
        super().__init__(message)
        self.request_id = request_id


class EventRefusedError(PipelineError):
    """PostgreSQL refused one event (not an outage); it is lost. Logged at ERROR with ``request_id``; the
    database's own message stays in that log line."""

    def __init__(self, request_id: str) -> None:
        super().__init__("the database refused the event")
        self.request_id = request_id


class StoreUnavailableError(PipelineError):
    """The database could not take the batch; nothing of it was stored. Callers may retry later."""
