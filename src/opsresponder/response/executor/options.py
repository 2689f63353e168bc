"""The spec's ``execution_options`` of POST /api/v1/autonomous/execute."""

from __future__ import annotations

from typing import Annotated

import msgspec


class NotificationPreferences(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Messages about the execution itself (templates ``execution_started``, ``execution_completed``,
    ``execution_failed``); `channels` empty: the notifier's default channels."""

    notify_on_start: bool = False
    notify_on_completion: bool = False
    notify_on_failure: bool = False
    channels: list[str] = msgspec.field(default_factory=list)


class ExecutionOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How to run: `dry_run` runs nothing; `rollback_on_failure` undoes the completed steps when the
    execution fails; `max_execution_time_minutes` (else the template's, else the configured default)
    bounds the actions' run."""

    dry_run: bool = False
    rollback_on_failure: bool = True
    max_execution_time_minutes: Annotated[int, msgspec.Meta(ge=1, le=1440)] | None = None
    notification_preferences: NotificationPreferences = msgspec.field(default_factory=NotificationPreferences)
