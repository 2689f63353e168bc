"""Response templates (playbooks): the one model both spec forms map into, read from JSON or YAML and
checked completely (docs/templates.md). The response side executes them (docs/response.md).

``read_template(raw, fmt, catalog)`` is the whole way in: decode, read the body (`forms`), map it onto
`ResponseTemplate` with the scripts resolved, and `validate_template`. Each refusal is a `TemplateError`
naming the field.
"""

from __future__ import annotations

from opsresponder.rules.templates.errors import TemplateError
from opsresponder.rules.templates.forms import BodyFormat, decode, normalize, read_body
from opsresponder.rules.templates.model import ResponseTemplate, TemplateBody
from opsresponder.rules.templates.scripts import Script, ScriptCatalog, load_script_catalog
from opsresponder.rules.templates.validate import validate_template

__all__ = [
    "BodyFormat",
    "ResponseTemplate",
    "Script",
    "ScriptCatalog",
    "TemplateBody",
    "TemplateError",
    "load_script_catalog",
    "read_template",
    "validate_template",
]


def read_template(raw: bytes | str, fmt: BodyFormat, catalog: ScriptCatalog) -> ResponseTemplate:
    """The checked template in `raw` (JSON or YAML; optionally under ``response_template:``).

    Raises:
        TemplateError: naming the field; ``malformed`` when `raw` is not JSON or YAML at all.
    """
    return validate_template(normalize(read_body(decode(raw, fmt)), catalog), catalog)
