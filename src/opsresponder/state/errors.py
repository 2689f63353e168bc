"""Errors of the state package."""

from __future__ import annotations

from opsresponder.core.errors import OpsResponderError


class StateError(OpsResponderError):
    """A state operation failed: the backend is unreachable, not started, or a key holds another kind.

    Redis errors are wrapped in this at the backend boundary (``raise StateError(...) from e``).
    """
