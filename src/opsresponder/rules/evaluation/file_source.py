"""``rules.file``: trigger rules from a YAML file, read at start and again whenever the file changes.

The file holds ``rules:``, a list of trigger rules in the API's JSON shape, each with its own ``id``
(docs/rules-evaluation.md). A file that does not load at start fails the start (and ``check-config``);
a bad edit later keeps the rules read before and is logged.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog
import yaml

from opsresponder.core.errors import ConfigError
from opsresponder.rules.conditions import ConditionError
from opsresponder.rules.evaluation.spec import RuleSpec

log = structlog.get_logger(__name__)


def load_rules_file(path: Path) -> list[RuleSpec]:
    """The rules of `path`.

    Raises:
        ConfigError: unreadable file, bad YAML, or a bad rule; the message names ``rules.file`` and where.
    """
    try:
        tree: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"invalid configuration: rules.file: cannot read {path}: {e.strerror}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"invalid configuration: rules.file: {path} is not valid YAML: {e}") from e
    items = tree.get("rules") if isinstance(tree, dict) else None
    if not isinstance(items, list):
        raise ConfigError(f"invalid configuration: rules.file: {path} needs a top-level list `rules`")
    specs: list[RuleSpec] = []
    seen: set[int] = set()
    for i, item in enumerate(items):
        where = f"rules.file: {path}: rules[{i}]"
        rule_id = item.get("id") if isinstance(item, dict) else None
        if isinstance(rule_id, bool) or not isinstance(rule_id, int) or rule_id in seen:
            raise ConfigError(f"invalid configuration: {where}.id: a unique integer is required")
        seen.add(rule_id)
        body = {k: v for k, v in item.items() if k != "id"}
        try:
            specs.append(RuleSpec.from_json(rule_id, body))
        except ConditionError as e:
            raise ConfigError(f"invalid configuration: {where}.{e.path}: {e.reason}") from e
    return specs


class FileRuleSource:
    """A `RuleSource` over ``rules.file``; `version` is the file's modification time and size."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._rules: Sequence[RuleSpec] = load_rules_file(path)
        self._loaded_version = self._stat()

    def _stat(self) -> object:
        try:
            st = os.stat(self._path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    async def version(self) -> object:
        return self._stat()

    async def active_rules(self) -> Sequence[RuleSpec]:
        current = self._stat()
        if current != self._loaded_version:
            try:
                self._rules = load_rules_file(self._path)
            except ConfigError as e:
                log.error("The rules file did not load; keeping the rules read before.", error=str(e))
            self._loaded_version = current
        return self._rules
