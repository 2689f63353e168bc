"""The root of every error OpsResponder raises; each package subclasses it."""

from __future__ import annotations


class OpsResponderError(Exception):
    """Root error. Third-party errors are wrapped in a subclass at the package boundary."""


class ConfigError(OpsResponderError):
    """The configuration is invalid; the message names the key path."""


class InvalidEventError(OpsResponderError):
    """An incoming event is not acceptable.

    Attributes:
        field: the dotted path of the offending field (e.g. ``severity`` or ``[2].title``), or ``None`` when
            the whole body is wrong (malformed JSON).
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
