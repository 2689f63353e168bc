"""`TemplateError`: a template is refused; ``field`` names where (``actions[2].depends_on[0]``)."""

from __future__ import annotations

from opsresponder.core.errors import OpsResponderError


class TemplateError(OpsResponderError):
    """An invalid template.

    Attributes:
        field: the path of the wrong field in the body, or None when the whole body is wrong.
        reason: what is wrong.
        malformed: the body is not JSON or YAML at all (an API answers 400, not 422).
    """

    def __init__(self, field: str | None, reason: str, *, malformed: bool = False) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason
        self.malformed = malformed
