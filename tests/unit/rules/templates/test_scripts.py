"""The script catalog file: read as documented, every mistake a ConfigError naming the file and entry."""

from __future__ import annotations

import os
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


def test_the_shipped_commands_are_resolved_to_executable_files() -> None:
    catalog = load_script_catalog(REPO / "config" / "scripts.yaml")
    for script in catalog.by_name.values():
        assert script.command is not None and script.http is None
        program = Path(script.command[0])
        assert program.is_absolute() and program.is_file() and os.access(program, os.X_OK), script.name
        if script.rollback is not None:
            assert script.rollback in catalog.by_name
    assert catalog.by_name["check_cpu_usage"].command == [
        str(REPO / "config" / "scripts" / "check_cpu_usage.py")
    ]
    assert catalog.by_name["kill_high_cpu_processes"].rollback == "restore_processes"
    assert catalog.by_name["quarantine_temp_files"].rollback == "restore_quarantined_files"


def _entry(extra: str, name: str = "a") -> str:
    return f"{{id: {ord(name)}, name: {name}, risk_level: low{extra}}}"


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([_entry("")], "scripts[0].command: a script has exactly one of command (an argv list) and http"),
        (
            [_entry(", command: [/bin/true], http: {url: 'http://x'}")],
            "scripts[0].command: a script has exactly one of",
        ),
        ([_entry(", command: []")], "scripts[0].command: must be a non-empty list"),
        ([_entry(", command: [/bin/true, '']")], "scripts[0].command: must be a non-empty list"),
        ([_entry(", command: [/no/such/program]")], "scripts[0].command: /no/such/program is not a file"),
        (
            [_entry(", command: [scripts/missing.py]")],
            "scripts[0].command: {dir}/scripts/missing.py is not a file",
        ),
        ([_entry(", command: [plain.txt]")], "scripts[0].command: {dir}/plain.txt is not executable"),
        (
            [_entry(", command: [/bin/true], rollback: nope")],
            "scripts[0].rollback: 'nope' is not a script of this catalog",
        ),
        ([_entry(", command: [/bin/true], rollback: a")], "scripts[0].rollback: a script cannot be its own"),
        (
            [
                _entry(", command: [/bin/true], rollback: b, parameters: [{name: p}]"),
                _entry(", command: [/bin/true]", "b"),
            ],
            "scripts[0].rollback: b does not declare p",
        ),
        (
            [
                _entry(", command: [/bin/true], rollback: b"),
                _entry(", command: [/bin/true], parameters: [{name: q, required: true}]", "b"),
            ],
            "scripts[0].rollback: b requires q, which this script lacks",
        ),
        (
            [_entry(", command: [/bin/true], parameters: [{name: p}, {name: p}]")],
            "scripts[0].parameters[1].name: 'p' is declared twice",
        ),
        (
            [_entry(", http: {url: 'ftp://x/y'}")],
            "scripts[0].http.url: 'ftp://x/y' is not an http or https URL",
        ),
        ([_entry(", http: {url: 'http://x:port/'}")], "scripts[0].http.url: 'http://x:port/' is not a URL"),
    ],
)
def test_command_http_and_rollback_mistakes(tmp_path: Path, entries: list[str], message: str) -> None:
    (tmp_path / "plain.txt").write_text("not a program")
    path = tmp_path / "scripts.yaml"
    path.write_text("scripts:\n" + "".join(f"  - {entry}\n" for entry in entries))
    with pytest.raises(ConfigError) as caught:
        load_script_catalog(path)
    assert message.format(dir=tmp_path) in str(caught.value)


def test_relative_commands_and_http_scripts_load(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    program = tmp_path / "bin" / "run.sh"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    path = tmp_path / "scripts.yaml"
    path.write_text(
        "scripts:\n"
        "  - {id: 1, name: a, risk_level: low, command: [bin/run.sh, --fixed], rollback: b,"
        " parameters: [{name: p}]}\n"
        "  - {id: 2, name: b, risk_level: low, parameters: [{name: p}],"
        " http: {url: 'https://hooks.example.com/{{ p }}', body: {text: '{{ p }}'}}}\n"
    )
    catalog = load_script_catalog(path)
    assert catalog.by_name["a"].command == [str(program), "--fixed"]
    assert catalog.by_id[2].http is not None and catalog.by_id[2].command is None
