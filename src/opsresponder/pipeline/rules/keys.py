"""The state backend keys of rule evaluation, in one place (the stage and the absence checker share them).

A key names the rule and, for windows, their size: one window size per key (see `StateBackend`), so an
edited window starts a fresh count instead of mixing sizes.
"""

from __future__ import annotations

HOUR_SECONDS = 3600.0


def window_key(rule_id: int, minutes: int, group: str) -> str:
    return f"rules:{rule_id}:w{minutes}:{group}"


def cooldown_key(rule_id: int, minutes: int, group: str) -> str:
    return f"rules:{rule_id}:c{minutes}:{group}"


def hourly_key(rule_id: int, group: str) -> str:
    return f"rules:{rule_id}:h:{group}"


def deadlines_key(rule_id: int) -> str:
    """The deadlines of an absence rule: members are group keys, scores the times they are due."""
    return f"rules:{rule_id}:absence"
