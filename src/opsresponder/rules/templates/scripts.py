"""The automation script catalog (``templates.scripts_file``): what a template may name, and what the
response runners run for it.

Each script has a numeric id (the API form's ``automation_script_id``), a name (the YAML form's
``automation_script``), a risk level, an action type, its declared parameters, and either a ``command``
(an argv run by the script runner, never through a shell) or an ``http`` call (the HTTP runner), a
timeout and optionally the script that rolls it back. config/scripts.yaml documents the file; the load
checks everything that can be checked before a run (the command exists and is executable, the rollback
is a catalog script accepting the same parameters), so a mistake fails at start, naming the entry.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec
import yaml

from opsresponder.core.errors import ConfigError
from opsresponder.rules.templates.model import RiskLevel


class ScriptParameter(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(pattern=r"^[a-z_][a-z0-9_]{0,63}$")]
    type: Literal["string", "integer", "float", "boolean", "list"] = "string"
    required: bool = False
    description: str = ""


ScriptActionType = Literal[
    "diagnostic", "remediation", "notification", "service_restart", "system_restart", "configuration_change"
]
"""What running a script does, as the risk matrix weighs it (service-spec.md "Risk Assessment Matrix")."""


class HttpCall(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A script that calls an endpoint instead of running a command (the HTTP runner).

    ``url``, header values and string leaves of ``body`` may hold ``{{ parameter }}`` placeholders; the
    URL must pass ``outbound``'s allowlist when the call is made.
    """

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: str
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    body: Any = None
    """JSON sent (null: no body); its string leaves are templated from the parameters."""
    expected_status: list[int] = msgspec.field(default_factory=list)
    """Statuses that count as success; empty: any 2xx."""


class Script(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    id: Annotated[int, msgspec.Meta(ge=1)]
    name: Annotated[str, msgspec.Meta(pattern=r"^[a-z_][a-z0-9_]{0,63}$")]
    risk_level: RiskLevel
    description: str = ""
    parameters: list[ScriptParameter] = msgspec.field(default_factory=list)
    action_type: ScriptActionType = "diagnostic"
    command: list[str] | None = None
    """The argv run (never through a shell); a relative first element is resolved against the catalog
    file's directory (``scripts/check_cpu_usage.py`` -> ``config/scripts/check_cpu_usage.py``): the
    loaded catalog holds it as an absolute path."""
    http: HttpCall | None = None
    """Instead of ``command``: the HTTP call made. A script has exactly one of the two."""
    parameters_as: Literal["arguments", "environment"] = "arguments"
    """``arguments``: one ``--name=value`` argument per parameter after the command (argparse reads it
    like ``--name value``, and a value starting with ``-`` cannot pass for an option);
    ``environment``: ``OPSR_PARAM_NAME=value``."""
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=86400)] = 300.0
    approval_required: bool = False
    """Every run needs a person's approval, whatever the risk score."""
    rollback: Annotated[str, msgspec.Meta(pattern=r"^[a-z_][a-z0-9_]{0,63}$")] | None = None
    """The catalog script that undoes this one (it gets the same parameters)."""


class _CatalogFile(msgspec.Struct, forbid_unknown_fields=True):
    scripts: list[Script]


class ScriptCatalog:
    """The known scripts by name and by id."""

    def __init__(self, scripts: Sequence[Script] = (), source: str = "no catalog") -> None:
        self.source = source
        self.by_name: Mapping[str, Script] = {s.name: s for s in scripts}
        self.by_id: Mapping[int, Script] = {s.id: s for s in scripts}

    def names(self) -> str:
        return ", ".join(sorted(self.by_name)) or "none"


def load_script_catalog(path: str | Path | None) -> ScriptCatalog:
    """The catalog in `path` (None: an empty catalog, so every script a template names is unknown).

    A relative command (its first element) is resolved against the directory of `path`; the catalog
    returned holds the absolute path.

    Raises:
        ConfigError: the file cannot be read, is not YAML, or an entry is wrong; the message names the
            file and the entry (``scripts[2].risk_level``, ``scripts[2].command``): two scripts share an
            id or a name, a script has both or neither of ``command`` and ``http``, a command is empty or
            not an executable file, ``http.url`` is not an http(s) URL, a parameter is declared twice, a
            ``rollback`` is not another script of the catalog or does not accept this script's parameters.
    """
    if path is None:
        return ScriptCatalog()
    where = f"templates.scripts_file {path}"
    try:
        tree: Any = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"cannot read {where}: {e.strerror}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{where} is not valid YAML: {e}") from e
    try:
        catalog = msgspec.convert(tree, _CatalogFile)
    except msgspec.ValidationError as e:
        message = str(e)
        if " - at `$" not in message:
            message += " at the top level (a mapping: scripts: [...])"
        raise ConfigError(f"{where}: {message.replace('$.', '')}") from e
    for key in ("id", "name"):
        seen: set[object] = set()
        for i, script in enumerate(catalog.scripts):
            value = getattr(script, key)
            if value in seen:
                raise ConfigError(f"{where}: scripts[{i}].{key}: {value!r} is used by another script")
            seen.add(value)
    base = Path(path).absolute().parent
    by_name = {script.name: script for script in catalog.scripts}
    scripts: list[Script] = []
    for i, script in enumerate(catalog.scripts):
        try:
            scripts.append(_checked(script, base, by_name))
        except _EntryError as e:
            raise ConfigError(f"{where}: scripts[{i}].{e.field}: {e}") from None
    return ScriptCatalog(scripts, str(path))


class _EntryError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _checked(script: Script, base: Path, by_name: Mapping[str, Script]) -> Script:
    """`script` with its command resolved, after the checks that need the whole catalog or the disk."""
    if (script.command is None) == (script.http is None):
        raise _EntryError("command", "a script has exactly one of command (an argv list) and http")
    names = [p.name for p in script.parameters]
    for j, name in enumerate(names):
        if name in names[:j]:
            raise _EntryError(f"parameters[{j}].name", f"{name!r} is declared twice")
    if script.rollback is not None:
        _check_rollback(script, by_name)
    if script.http is not None:
        _check_url(script.http.url)
        return script
    assert script.command is not None
    if not script.command or any(not arg or "\x00" in arg for arg in script.command):
        raise _EntryError("command", "must be a non-empty list of non-empty arguments")
    program = Path(script.command[0])
    if not program.is_absolute():
        program = base / program
    if not program.is_file():
        raise _EntryError("command", f"{program} is not a file")
    if not os.access(program, os.X_OK):
        raise _EntryError("command", f"{program} is not executable (chmod +x)")
    return msgspec.structs.replace(script, command=[str(program), *script.command[1:]])


def _check_rollback(script: Script, by_name: Mapping[str, Script]) -> None:
    target = by_name.get(script.rollback or "")
    if target is None:
        raise _EntryError("rollback", f"{script.rollback!r} is not a script of this catalog")
    if target.name == script.name:
        raise _EntryError("rollback", "a script cannot be its own rollback")
    # The rollback runs with the parameters the script ran with, so it must accept every one of them
    # and need none they may lack.
    accepted = {p.name for p in target.parameters}
    given = {p.name for p in script.parameters}
    missing = sorted(given - accepted)
    if missing:
        raise _EntryError("rollback", f"{target.name} does not declare {', '.join(missing)}")
    needed = sorted(p.name for p in target.parameters if p.required and p.name not in given)
    if needed:
        raise _EntryError("rollback", f"{target.name} requires {', '.join(needed)}, which this script lacks")


def _check_url(url: str) -> None:
    # The allowlist (outbound/) is applied when the call is made: placeholders decide the final URL.
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as e:
        raise _EntryError("http.url", f"{url!r} is not a URL: {e}") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _EntryError("http.url", f"{url!r} is not an http or https URL")
