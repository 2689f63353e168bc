"""Reading ``config/templates/*.yaml``: each valid file a `TemplateFile`, each invalid one logged and skipped.

A template's identity across restarts is its id and version; `TemplateFile.sha256` is the hash of the
checked template (not of the file's bytes), so editing a comment or the layout is no change, while any
change to what the template says is one. store/response_templates.py decides what a change means.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import msgspec
import structlog

from opsresponder.rules.templates import ResponseTemplate, ScriptCatalog, TemplateError, read_template

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class TemplateFile:
    path: str
    template: ResponseTemplate
    sha256: str


def template_sha256(template: ResponseTemplate) -> str:
    return hashlib.sha256(msgspec.json.encode(template)).hexdigest()


def read_template_files(directory: str | Path | None, catalog: ScriptCatalog) -> list[TemplateFile]:
    """The valid templates of `directory` (``*.yaml`` and ``*.yml``, in name order).

    A file that cannot be read or is refused is logged at ERROR (an operator has to fix it) and skipped;
    so is a second file with an id already read. A missing directory is logged at WARNING: no templates.
    """
    if directory is None:
        return []
    root = Path(directory)
    if not root.is_dir():
        log.warning("The templates directory does not exist; no file templates loaded.", directory=str(root))
        return []
    found: list[TemplateFile] = []
    seen: dict[str, str] = {}
    for path in sorted([*root.glob("*.yaml"), *root.glob("*.yml")]):
        try:
            template = read_template(path.read_bytes(), "yaml", catalog)
        except OSError as e:
            log.error("A template file cannot be read; skipped.", path=str(path), error=e.strerror)
            continue
        except TemplateError as e:
            log.error("A template file is invalid; skipped.", path=str(path), error=str(e), field=e.field)
            continue
        if template.id in seen:
            log.error(
                "Two template files have the same id; the second is skipped.",
                path=str(path),
                template=template.id,
                first=seen[template.id],
            )
            continue
        seen[template.id] = str(path)
        found.append(TemplateFile(str(path), template, template_sha256(template)))
    return found
