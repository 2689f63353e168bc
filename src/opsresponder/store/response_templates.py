"""Response templates in ``rules.response_templates``: the API's CRUD and the start-up load of the files.

Versions (docs/templates.md): a row per template version. API templates change in place (PUT) and are
deleted by DELETE. File templates are read-only through the API; at each start every valid file of
``templates.directory`` is compared with what is stored under its id and version:
- not stored: a new row, which becomes the current version of its id (the previous one stays, not
  current, for whatever refers to it);
- stored, same content: it is (again) the current version;
- stored, different content: refused and logged at ERROR (change the version to publish a change); the
  stored content stays in force.
A file template whose file is gone, or no longer valid, stops being current. An id taken by an API
template is refused for a file, and the other way round (one current version per id, an index).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal

import asyncpg
import msgspec
import structlog

from opsresponder.core.errors import OpsResponderError
from opsresponder.rules.templates import ResponseTemplate, TemplateError
from opsresponder.rules.templates.files import TemplateFile, template_sha256
from opsresponder.store.pool import connection

log = structlog.get_logger(__name__)

_COLUMNS: Final = (
    "id, template_key, version, source, file_path, body, current, created_by, created_at, updated_at"
)
FILE_LOADER: Final = "config"


class StoredTemplate(msgspec.Struct, kw_only=True):
    """A template as the API shows it.

    Attributes:
        id: the row (one version of one template).
        key: the template's id (``high_cpu_investigation``).
        source: ``api`` (changed through the API) or ``file`` (from ``file``, read-only).
        current: false for a file template's older version, or one whose file is gone.
        template: the checked template (both spec forms read into this one shape).
    """

    id: int
    key: str
    version: str
    source: Literal["api", "file"]
    file: str | None
    current: bool
    created_by: str
    created_at: datetime
    updated_at: datetime
    template: ResponseTemplate


class TemplateConflictError(OpsResponderError):
    """The template's id is taken by another current template (409)."""


class ReadOnlyTemplateError(OpsResponderError):
    """A file template cannot be changed or deleted through the API (409)."""


class ResponseTemplateRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def create(self, template: ResponseTemplate, created_by: str) -> StoredTemplate:
        """Raises:
        TemplateConflictError: a current template has this id.
        TemplateError: ``trigger_rule_id`` names no trigger rule.
        DatabaseUnavailableError: PostgreSQL cannot be reached.
        """
        async with connection(self.pool) as conn, conn.transaction():
            await _check_trigger_rule(conn, template)
            try:
                row = await conn.fetchrow(
                    f"""INSERT INTO rules.response_templates
                            (template_key, version, source, body, body_sha256, created_by)
                        VALUES ($1, $2, 'api', $3, $4, $5) RETURNING {_COLUMNS}""",
                    template.id,
                    template.version,
                    msgspec.to_builtins(template),
                    template_sha256(template),
                    created_by,
                )
            except asyncpg.UniqueViolationError as e:
                raise TemplateConflictError(_taken(template)) from e
        assert row is not None
        return _from_row(row)

    async def replace(self, row_id: int, template: ResponseTemplate) -> StoredTemplate | None:
        """Replace an API template (None when no row has `row_id`).

        Raises:
            ReadOnlyTemplateError: the row is a file template.
            TemplateConflictError: the new id (and version) is another current template's.
            TemplateError: ``trigger_rule_id`` names no trigger rule.
        """
        async with connection(self.pool) as conn, conn.transaction():
            source = await conn.fetchval(
                "SELECT source FROM rules.response_templates WHERE id = $1 FOR UPDATE", row_id
            )
            if source is None:
                return None
            _writable(source, row_id)
            await _check_trigger_rule(conn, template)
            try:
                row = await conn.fetchrow(
                    f"""UPDATE rules.response_templates SET template_key = $2, version = $3, body = $4,
                            body_sha256 = $5, updated_at = now()
                        WHERE id = $1 RETURNING {_COLUMNS}""",
                    row_id,
                    template.id,
                    template.version,
                    msgspec.to_builtins(template),
                    template_sha256(template),
                )
            except asyncpg.UniqueViolationError as e:
                raise TemplateConflictError(_taken(template)) from e
        return None if row is None else _from_row(row)

    async def delete(self, row_id: int) -> bool:
        """False when no row has `row_id`. Raises `ReadOnlyTemplateError` for a file template."""
        async with connection(self.pool) as conn, conn.transaction():
            source = await conn.fetchval(
                "SELECT source FROM rules.response_templates WHERE id = $1 FOR UPDATE", row_id
            )
            if source is None:
                return False
            _writable(source, row_id)
            await conn.execute("DELETE FROM rules.response_templates WHERE id = $1", row_id)
        return True

    async def get(self, row_id: int) -> StoredTemplate | None:
        async with connection(self.pool) as conn:
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM rules.response_templates WHERE id = $1", row_id
            )
        return None if row is None else _from_row(row)

    async def get_version(self, template_id: str, version: str) -> ResponseTemplate | None:
        """One version of a template, current or not (an execution runs the version it was decided
        with); None when it is not stored."""
        async with connection(self.pool) as conn:
            body = await conn.fetchval(
                "SELECT body FROM rules.response_templates WHERE template_key = $1 AND version = $2",
                template_id,
                version,
            )
        return None if body is None else msgspec.convert(body, ResponseTemplate)

    async def list_current(self) -> list[StoredTemplate]:
        """The current version of every template, by key."""
        async with connection(self.pool) as conn:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM rules.response_templates WHERE current ORDER BY template_key"
            )
        return [_from_row(r) for r in rows]

    async def sync_files(self, files: list[TemplateFile]) -> dict[str, int]:
        """Make the files' templates the current file templates (see the module docstring).

        Returns counts by outcome: ``added``, ``unchanged``, ``refused``, ``retired``.
        """
        counts = {"added": 0, "unchanged": 0, "refused": 0, "retired": 0}
        kept: list[str] = []
        async with connection(self.pool) as conn, conn.transaction():
            # Replicas starting together load the same files one after the other.
            await conn.execute("LOCK TABLE rules.response_templates IN SHARE ROW EXCLUSIVE MODE")
            for file in files:
                outcome = await _sync_file(conn, file)
                counts[outcome] += 1
                if outcome != "refused" or await _has_current_file_row(conn, file.template.id):
                    kept.append(file.template.id)
            status = await conn.execute(
                """UPDATE rules.response_templates SET current = false, updated_at = now()
                   WHERE source = 'file' AND current AND NOT (template_key = ANY($1::text[]))""",
                kept,
            )
            counts["retired"] = int(status.rsplit(" ", 1)[1])
        return counts


async def _sync_file(conn: asyncpg.Connection, file: TemplateFile) -> str:
    template = file.template
    stored = await conn.fetchrow(
        """SELECT id, source, body_sha256 FROM rules.response_templates
           WHERE template_key = $1 AND version = $2""",
        template.id,
        template.version,
    )
    holder = await conn.fetchrow(
        "SELECT id, source FROM rules.response_templates WHERE template_key = $1 AND current", template.id
    )
    taken_by_api = (holder is not None and holder["source"] == "api") or (
        stored is not None and stored["source"] == "api"
    )
    if taken_by_api:
        log.error(
            "A template file has the id of a template created through the API; skipped.",
            path=file.path,
            template=template.id,
        )
        return "refused"
    if stored is not None and stored["body_sha256"] != file.sha256:
        log.error(
            "A template file changed without a new version; the stored version stays in force. Give the "
            "change a new version.",
            path=file.path,
            template=template.id,
            version=template.version,
        )
        return "refused"
    await conn.execute(
        """UPDATE rules.response_templates SET current = false, updated_at = now()
           WHERE template_key = $1 AND current AND version <> $2""",
        template.id,
        template.version,
    )
    if stored is not None:
        await conn.execute(
            """UPDATE rules.response_templates SET current = true, file_path = $2, updated_at = now()
               WHERE id = $1 AND NOT current""",
            stored["id"],
            file.path,
        )
        return "unchanged"
    await conn.execute(
        """INSERT INTO rules.response_templates
               (template_key, version, source, file_path, body, body_sha256, created_by)
           VALUES ($1, $2, 'file', $3, $4, $5, $6)""",
        template.id,
        template.version,
        file.path,
        msgspec.to_builtins(template),
        file.sha256,
        FILE_LOADER,
    )
    log.info("A template file was loaded.", path=file.path, template=template.id, version=template.version)
    return "added"


async def _has_current_file_row(conn: asyncpg.Connection, key: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM rules.response_templates WHERE template_key = $1 AND current "
            "AND source = 'file')",
            key,
        )
    )


async def _check_trigger_rule(conn: asyncpg.Connection, template: ResponseTemplate) -> None:
    if template.trigger_rule_id is None:
        return
    exists = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM rules.trigger_rules WHERE id = $1)", template.trigger_rule_id
    )
    if not exists:
        raise TemplateError("trigger_rule_id", f"no trigger rule has id {template.trigger_rule_id}")


def _writable(source: str, row_id: int) -> None:
    if source == "file":
        raise ReadOnlyTemplateError(
            f"template {row_id} comes from a file in the templates directory (templates.directory): change "
            "the file, with a new version, and restart"
        )


def _taken(template: ResponseTemplate) -> str:
    return (
        f"template id {template.id!r} is taken by another current template (or version {template.version!r} "
        "of it exists); PUT that one to change it, or choose another id"
    )


def _from_row(row: asyncpg.Record) -> StoredTemplate:
    values: dict[str, Any] = dict(row)
    values["key"] = values.pop("template_key")
    values["file"] = values.pop("file_path")
    values["template"] = values.pop("body")
    return msgspec.convert(values, StoredTemplate)
