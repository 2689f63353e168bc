"""The script catalog file: read as documented, every mistake a ConfigError naming the file and entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsresponder.core.errors import ConfigError
from opsresponder.rules.templates import load_script_catalog

REPO = Path(__file__).parents[4]


def test_the_shipped_catalog() -> None:
    catalog = load_script_catalog(REPO / "config" / "scripts.yaml")
    assert catalog.by_id[123].name == "list_high_cpu_processes"  # the spec's API example ids
    assert catalog.by_id[124].name == "kill_high_cpu_processes"
    assert catalog.by_name["restart_service"].risk_level == "high"


def test_no_catalog_knows_no_script() -> None:
    assert not load_script_catalog(None).by_name


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("scripts: [{id: 1, name: a, risk_level: extreme}]", "scripts[0].risk_level"),
        ("scripts: [{id: 1, name: a, risk_level: low}, {id: 1, name: b, risk_level: low}]", "scripts[1].id"),
        (
            "scripts: [{id: 1, name: a, risk_level: low}, {id: 2, name: a, risk_level: low}]",
            "scripts[1].name",
        ),
        ("scripts: [{id: 1, name: Bad Name, risk_level: low}]", "scripts[0].name"),
        ("scripts: [{id: 1, name: a, risk_level: low, shell: x}]", "unknown field `shell`"),
        ("scripts: [1", "not valid YAML"),
        ("- a", "the top level"),
    ],
)
def test_mistakes(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "scripts.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_script_catalog(path)
    assert message in str(caught.value) and "templates.scripts_file" in str(caught.value)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read templates\.scripts_file"):
        load_script_catalog(tmp_path / "nope.yaml")
