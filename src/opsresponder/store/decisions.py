"""Decisions (``autonomous.decisions``): what an analysis concluded about one event, with every input it
used, so it can be audited, executed and learned from."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

import asyncpg
import msgspec

from opsresponder.rules.templates.model import RiskLevel
from opsresponder.store.pool import connection


class DecisionAction(msgspec.Struct, kw_only=True):
    """One recommended action of a decision, resolved: what the executor runs when it is chosen.

    Attributes:
        action_id: the spec's integer ``action_id``, unique across all decisions.
        key: the template action's id (``diagnostic_cpu``): how ``depends_on``, criteria and rollback
            conditions name it.
        name, description: for people.
        action_type: the template action's type (diagnostic, remediation, verification, notification,
            escalation).
        script: the catalog script's name; None for notification and escalation actions.
        parameters: the resolved values (template variables substituted), still to be type-checked by the
            runner against the script's declared parameters.
        channels, message_template: a notification action's channels and message template name.
        depends_on: keys of actions that must have completed first.
        required: its failure fails the execution; an optional action's failure is logged and skipped over.
        timeout_seconds: the smaller of the action's ``timeout_minutes`` and the script's timeout.
        risk_level, risk_score: the risk matrix's verdict for this action in this decision's context.
        approval_required: the score is over the threshold, or the action or its script demands it.
        rollback_script: the catalog script that undoes it (the script's ``rollback``), or None.
        estimated_duration_minutes, success_probability: from recorded outcomes, or the prior.
    """

    action_id: int
    key: str
    name: str
    description: str = ""
    action_type: str
    script: str | None = None
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)
    channels: list[str] = msgspec.field(default_factory=list)
    message_template: str | None = None
    depends_on: list[str] = msgspec.field(default_factory=list)
    required: bool = False
    timeout_seconds: float
    risk_level: RiskLevel
    risk_score: float
    approval_required: bool
    rollback_script: str | None = None
    estimated_duration_minutes: float
    success_probability: float


class StoredDecision(msgspec.Struct, kw_only=True):
    """A decision as stored.

    Attributes:
        decision_id: the spec's ``decision_id``.
        event_id, target, fingerprint, pattern_id: the event decided about, its host, fingerprint and
            message template id (``metadata.pattern.id``), what outcomes are grouped by.
        requested_by: the token name that asked (or ``rules`` for the automatic loop).
        template_id, template_version: the response template the actions came from, or None when no
            template applied (then there are no actions).
        variables: the template variables' values the parameters and criteria were resolved with.
        inputs: every input the analysis used (context as given and as resolved: criticality and where
            it came from, business hours, maintenance window, group size, history counts).
        analysis: the spec's ``analysis_result`` as answered.
        recommended_actions: resolved actions, in the template's order.
        approval: the spec's ``approval_requirements`` as answered.
    """

    decision_id: int
    event_id: int
    created_at: datetime
    requested_by: str
    target: str | None = None
    fingerprint: str | None = None
    pattern_id: str | None = None
    template_id: str | None = None
    template_version: str | None = None
    variables: dict[str, Any] = msgspec.field(default_factory=dict)
    inputs: dict[str, Any] = msgspec.field(default_factory=dict)
    analysis: dict[str, Any] = msgspec.field(default_factory=dict)
    recommended_actions: list[DecisionAction] = msgspec.field(default_factory=list)
    approval: dict[str, Any] = msgspec.field(default_factory=dict)


_DECISION_COLUMNS: Final = (
    "id, event_id, created_at, requested_by, target, fingerprint, pattern_id, template_id, template_version, "
    "variables, inputs, analysis, approval"
)
# What a DecisionAction keeps in decision_actions.body: everything but the columns of its own.
_OWN_COLUMNS: Final = frozenset({"action_id", "key"})


class DecisionRepository:
    """Writes and reads ``autonomous.decisions`` with their ``autonomous.decision_actions``.

    A decision and its actions are written in one transaction, so a reader never sees a decision without
    the actions it recommended; the action ids come from the database (an identity), unique across all
    decisions, in the order of the actions given.
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def create(
        self,
        *,
        event_id: int,
        created_at: datetime,
        requested_by: str,
        target: str | None = None,
        fingerprint: str | None = None,
        pattern_id: str | None = None,
        template_id: str | None = None,
        template_version: str | None = None,
        variables: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        analysis: dict[str, Any] | None = None,
        actions: Sequence[DecisionAction] = (),
        approval: dict[str, Any] | None = None,
    ) -> StoredDecision:
        """Store one decision; each action's ``action_id`` is ignored and assigned by the database.

        Raises:
            DatabaseUnavailableError: PostgreSQL cannot be reached; nothing was stored.
        """
        async with connection(self.pool) as conn, conn.transaction():
            row = await conn.fetchrow(
                f"""INSERT INTO autonomous.decisions (event_id, created_at, requested_by, target, fingerprint,
                        pattern_id, template_id, template_version, variables, inputs, analysis, approval)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                    RETURNING {_DECISION_COLUMNS}""",
                event_id,
                created_at,
                requested_by,
                target,
                fingerprint,
                pattern_id,
                template_id,
                template_version,
                variables or {},
                inputs or {},
                analysis or {},
                approval or {},
            )
            assert row is not None
            ids: list[int] = []
            if actions:
                # One statement; WITH ORDINALITY keeps the identity values in the actions' order.
                records = await conn.fetch(
                    """INSERT INTO autonomous.decision_actions (decision_id, position, key, body)
                       SELECT $1, a.position - 1, a.key, a.body
                       FROM unnest($2::text[], $3::jsonb[]) WITH ORDINALITY AS a(key, body, position)
                       ORDER BY a.position
                       RETURNING action_id, position""",
                    row["id"],
                    [a.key for a in actions],
                    [_body(a) for a in actions],
                )
                by_position = {r["position"]: r["action_id"] for r in records}
                ids = [by_position[i] for i in range(len(actions))]
        stored = [msgspec.structs.replace(a, action_id=i) for a, i in zip(actions, ids, strict=True)]
        return _decision(row, stored)

    async def get(self, decision_id: int) -> StoredDecision | None:
        """The decision with its actions in order, or None.

        Raises:
            DatabaseUnavailableError: PostgreSQL cannot be reached.
        """
        async with connection(self.pool) as conn:
            row = await conn.fetchrow(
                f"SELECT {_DECISION_COLUMNS} FROM autonomous.decisions WHERE id = $1", decision_id
            )
            if row is None:
                return None
            actions = await conn.fetch(
                """SELECT action_id, key, body FROM autonomous.decision_actions
                   WHERE decision_id = $1 ORDER BY position""",
                decision_id,
            )
        return _decision(row, [_action(a) for a in actions])

    async def add_input(self, decision_id: int, key: str, value: Any) -> None:
        """Record one more input of a decision after it was made (the automatic loop's governor verdict),
        under ``inputs[key]``."""
        async with connection(self.pool) as conn:
            await conn.execute(
                "UPDATE autonomous.decisions SET inputs = inputs || jsonb_build_object($2::text, $3::jsonb) "
                "WHERE id = $1",
                decision_id,
                key,
                value,
            )

    async def list_for_event(self, event_id: int, *, limit: int = 20) -> list[StoredDecision]:
        """The latest decisions about one event, newest first, without their actions (``get`` one for
        them).

        Raises:
            DatabaseUnavailableError: PostgreSQL cannot be reached.
        """
        async with connection(self.pool) as conn:
            rows = await conn.fetch(
                f"""SELECT {_DECISION_COLUMNS} FROM autonomous.decisions WHERE event_id = $1
                    ORDER BY id DESC LIMIT $2""",
                event_id,
                limit,
            )
        return [_decision(r, []) for r in rows]


def _body(action: DecisionAction) -> dict[str, Any]:
    built: dict[str, Any] = msgspec.to_builtins(action)
    return {k: v for k, v in built.items() if k not in _OWN_COLUMNS}


def _action(row: asyncpg.Record) -> DecisionAction:
    return msgspec.convert({**row["body"], "action_id": row["action_id"], "key": row["key"]}, DecisionAction)


def _decision(row: asyncpg.Record, actions: list[DecisionAction]) -> StoredDecision:
    values: dict[str, Any] = dict(row)
    values["decision_id"] = values.pop("id")
    return StoredDecision(**values, recommended_actions=actions)
