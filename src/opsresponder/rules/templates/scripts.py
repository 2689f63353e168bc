"""The automation script catalog templates are checked against (``templates.scripts_file``).

Until the autonomous response issue brings the real catalog (commands, runners), this file lists what a
template may name: each script's numeric id (the API form's ``automation_script_id``), its name (the
YAML form's ``automation_script``), its risk level and its parameters. config/scripts.yaml documents it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

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
    file's directory (``scripts/check_cpu_usage.py`` -> ``config/scripts/check_cpu_usage.py``)."""
    http: HttpCall | None = None
    """Instead of ``command``: the HTTP call made. A script has exactly one of the two."""
    parameters_as: Literal["arguments", "environment"] = "arguments"
    """``arguments``: ``--name value`` after the command; ``environment``: ``OPSR_PARAM_NAME=value``."""
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

    Raises:
        ConfigError: the file cannot be read, is not YAML, or an entry is wrong; the message names the
            file and the entry (``scripts[2].risk_level``); two scripts share an id or a name.
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
    return ScriptCatalog(catalog.scripts, str(path))
