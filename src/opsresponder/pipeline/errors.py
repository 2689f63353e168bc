"""Errors of the pipeline package."""

from __future__ import annotations

from opsresponder.core.errors import OpsResponderError


class PipelineError(OpsResponderError):
    """Root of pipeline errors."""


class IntakeClosedError(PipelineError):
    """Raised by `Intake.put` once shutdown has begun."""


class StageError(PipelineError):
    """A pipeline stage raised on a batch (a bug); the batch was not stored. Logged with the traceback."""


class StoreUnavailableError(PipelineError):
    """The database could not take the batch; nothing of it was stored. Callers may retry later."""
