"""What the executor needs from elsewhere, as protocols: the template versions (the store's
`ResponseTemplateRepository.get_version`) and where outcomes go (the analysis side's outcome store)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from opsresponder.rules.templates import ResponseTemplate
from opsresponder.store.outcomes import ActionOutcome


class TemplateVersions(Protocol):
    """One stored version of a template, or None when it is not (or no longer) stored."""

    async def get_version(self, template_id: str, version: str) -> ResponseTemplate | None: ...


class OutcomeSink(Protocol):
    """Records how each action of an ended execution went (what confidence is learned from)."""

    async def record(self, outcomes: Sequence[ActionOutcome]) -> None: ...
