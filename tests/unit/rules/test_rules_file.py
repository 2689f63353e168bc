"""``rules.file``: rules read at start (a bad file refuses the start naming rules.file), reread when the
file changes, and a bad edit keeps the rules read before."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from opsresponder.core.errors import ConfigError
from opsresponder.rules.evaluation.file_source import FileRuleSource, load_rules_file

GOOD = """
rules:
  - id: 1
    name: cpu
    conditions: {event_type: threshold_breach, metadata.cpu_usage: {$gt: 90}}
    time_window_minutes: 5
    threshold: 3
    group_by: [host]
  - id: 2
    name: nightly backup
    conditions: {event_type: backup_done}
    group_by: [host]
    absence: {within_minutes: 1500, expected_groups: [db-1]}
"""


def test_the_rules_are_read_with_their_ids(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD)
    first, second = load_rules_file(path)
    assert (first.rule_id, first.threshold, first.group_by) == (1, 3, ("host",))
    assert second.absence is not None and second.absence.expected_groups == ("db-1",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: {}", r"rules\.file: .* needs a top-level list `rules`"),
        (
            "rules: [{name: x, conditions: {}}]",
            r"rules\.file: .*rules\[0\]\.id: a unique integer is required",
        ),
        ("rules: [{id: 1, conditions: {host: {$gt: 1}}}]", r"rules\[0\]\.conditions\.host\.\$gt: "),
        (
            "rules: [{id: 1, conditions: {}, threshold: 2}]",
            r"rules\[0\]\.threshold: a threshold above 1 needs",
        ),
        ("rules: [\n  - {", r"rules\.file: .* is not valid YAML"),
    ],
)
def test_a_bad_file_is_refused_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_rules_file(path)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"rules\.file: cannot read"):
        FileRuleSource(tmp_path / "nope.yaml")


async def test_a_change_is_read_and_a_bad_edit_keeps_the_rules_before(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD)
    source = FileRuleSource(path)
    before = await source.version()
    assert [r.rule_id for r in await source.active_rules()] == [1, 2]
    path.write_text("rules:\n  - {id: 7, conditions: {host: a}}\n")
    os.utime(path, ns=(1, 1))  # a different modification time, however fast the test runs
    assert await source.version() != before
    assert [r.rule_id for r in await source.active_rules()] == [7]
    path.write_text("rules: [{id: 8, conditions: {host: {$nope: 1}}}]")
    os.utime(path, ns=(2, 2))
    assert [r.rule_id for r in await source.active_rules()] == [7]
