"""Trigger rules: ``/api/v1/rules/triggers`` and its ``/test`` (served on port 3009).

Changes need the ``write`` scope, reads and tests ``read``; ``created_by`` is the name of the token that
created the rule. A body is checked completely before anything is stored: an invalid one is answered
422 naming the field (``conditions.metadata.cpu.$gt``, ``conditions.host.$regex`` with RE2's message,
``cooldown_minutes``, ``group_by[0]``, ``absence.after...``), malformed JSON 400. An accepted rule's
answer carries its ``validation_result``: warnings and the estimated trigger rate. See docs/rules.md.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import msgspec
from litestar import Request, delete, get, post, put
from litestar.exceptions import NotFoundException, ServiceUnavailableException
from litestar.params import QueryParameter
from litestar.response.base import ASGIResponse

from opsresponder.api.auth import principal_of, scope_opt
from opsresponder.api.common import json_response
from opsresponder.api.context import EventsApiContext, context_of
from opsresponder.api.filters import MAX_BIGINT, Offset, ResourceId
from opsresponder.api.json_body import MALFORMED_JSON, BodyError, decode_json_body, refuse
from opsresponder.api.openapi import DATABASE_DOWN, NOT_FOUND, Answer, documented, error
from opsresponder.core.clock import utcnow
from opsresponder.core.event import Event
from opsresponder.ingest.http.generic import WebhookEvent, to_event
from opsresponder.pipeline.stages.normalize import normalize
from opsresponder.rules.conditions import LeafResult
from opsresponder.rules.triggers import (
    CompiledTriggerRule,
    RuleError,
    StoredTriggerRule,
    TriggerRuleBody,
    ValidationResult,
    compile_rule,
)
from opsresponder.store.rule_checks import TriggerRuleChecks
from opsresponder.store.trigger_rules import TriggerRuleRepository

PATH: Final = "/api/v1/rules/triggers"
MAX_LIMIT: Final = 1000


class RuleSaved(msgspec.Struct, kw_only=True):
    """The answer to POST (``created``) and PUT (``updated``), as service-spec.md gives it."""

    rule_id: int
    status: Literal["created", "updated"]
    validation_result: ValidationResult


class TriggerRuleList(msgspec.Struct, kw_only=True):
    """``GET /api/v1/rules/triggers``: a page of rules, oldest first."""

    rules: list[StoredTriggerRule]
    total_count: int
    has_more: bool


class RuleTestBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A rule (``rule_id`` of a saved one, or ``rule``, a body as POST takes) and an event (``event``, a
    sample in the webhook's shape, or ``event_id`` of a stored one): exactly one of each pair."""

    rule_id: Annotated[int, msgspec.Meta(ge=1, le=MAX_BIGINT)] | None = None
    rule: TriggerRuleBody | None = None
    event_id: Annotated[int, msgspec.Meta(ge=1, le=MAX_BIGINT)] | None = None
    event: WebhookEvent | None = None


class ConditionsOutcome(msgspec.Struct, kw_only=True):
    """Whether the event matched a set of conditions, and every condition's result in written order
    (``reason`` says why one did not hold: ``missing``, a type mismatch such as ``text value, needs
    number``, or ``false``)."""

    matched: bool
    conditions: list[LeafResult]


class RuleTestResult(msgspec.Struct, kw_only=True):
    """``POST /api/v1/rules/triggers/test``: the rule's ``conditions`` on the event (and, for an absence
    rule with ``after``, its ``after`` conditions), with notes on what else decides a firing."""

    matched: bool
    conditions: list[LeafResult]
    after: ConditionsOutcome | None
    rule_id: int | None
    event_id: int | None
    notes: list[str]


_INVALID_RULE: Final = error(
    "The rule is not valid: ``field`` names what is wrong (an unknown operator or field, a regex RE2 "
    "refuses with its message, ``$gt`` on a non-number, ``cooldown_minutes`` < 0, ``threshold`` < 1, "
    "``group_by`` on an unknown path, ``absence.within_minutes`` < 1, an unknown field)."
)
_BODY: Final = (
    "``conditions`` select the events (docs/conditions.md); the rule fires when ``threshold`` (default 1) "
    "matching events fall within ``time_window_minutes``, per ``group_by`` group, at most "
    "``max_triggers_per_hour`` times an hour and not within ``cooldown_minutes`` of its last firing. "
    "With ``absence`` it fires when an expected event does NOT arrive (docs/rules.md)."
)
_EXAMPLE: Final = {
    "name": "High CPU Alert Rule",
    "description": "Trigger when CPU usage exceeds 90%",
    "conditions": {
        "event_type": "threshold_breach",
        "severity": ["critical", "high"],
        "metadata.cpu_usage": {"$gt": 90},
        "host": {"$regex": "web-server-.*"},
    },
    "time_window_minutes": 5,
    "max_triggers_per_hour": 3,
    "cooldown_minutes": 15,
    "active": True,
}
_TEST_EXAMPLE: Final = {
    "rule": _EXAMPLE,
    "event": {
        "source": "nagios-prod",
        "event_type": "threshold_breach",
        "severity": "critical",
        "title": "High CPU Usage",
        "host": "web-server-01",
        "metadata": {"cpu_usage": 95.5},
    },
}

ActiveFilter = Annotated[
    bool | None, QueryParameter(description="Only active rules (true) or only inactive ones (false).")
]
Limit = Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description="Rules per page.")]


def _doc(answers: dict[int, Answer], body: Any = None, example: Any = None) -> dict[str, Any]:
    extra = {400: MALFORMED_JSON, 422: _INVALID_RULE} if body is not None else {}
    return documented(
        body=body,
        body_description=_BODY if body is not None else "",
        body_example=example,
        answers={**answers, 503: DATABASE_DOWN, **extra},
    )


@post(
    PATH,
    opt={
        **scope_opt("write"),
        **_doc(
            {201: Answer("Created; with warnings and the estimated rate.", RuleSaved)},
            TriggerRuleBody,
            _EXAMPLE,
        ),
    },
    summary="Create a trigger rule",
)
async def create_trigger_rule(request: Request[Any, Any, Any]) -> ASGIResponse:
    repository, checks = _parts(request)
    try:
        rule = await _read_rule(request)
    except BodyError as e:
        return refuse(e)
    result = await checks.validation_result(rule, None)
    created = await repository.create(rule.body, principal_of(request).name)
    return json_response(RuleSaved(rule_id=created.rule_id, status="created", validation_result=result), 201)


@get(
    PATH,
    opt={**scope_opt("read"), **_doc({200: Answer("A page of rules, oldest first.", TriggerRuleList)})},
    summary="List trigger rules",
)
async def list_trigger_rules(
    request: Request[Any, Any, Any], active: ActiveFilter = None, limit: Limit = 100, offset: Offset = 0
) -> ASGIResponse:
    rules, total = await _parts(request)[0].page(active=active, limit=limit, offset=offset)
    return json_response(
        TriggerRuleList(rules=rules, total_count=total, has_more=offset + len(rules) < total)
    )


@get(
    PATH + "/{rule_id:int}",
    opt={**scope_opt("read"), **_doc({200: Answer("The rule.", StoredTriggerRule), 404: NOT_FOUND})},
    summary="One trigger rule",
)
async def get_trigger_rule(request: Request[Any, Any, Any], rule_id: ResourceId) -> ASGIResponse:
    rule = await _parts(request)[0].get(rule_id)
    if rule is None:
        raise NotFoundException(f"trigger rule {rule_id} does not exist")
    return json_response(rule)


@put(
    PATH + "/{rule_id:int}",
    opt={
        **scope_opt("write"),
        **_doc(
            {200: Answer("Replaced (version + 1); with warnings and the rate.", RuleSaved), 404: NOT_FOUND},
            TriggerRuleBody,
            _EXAMPLE,
        ),
    },
    summary="Replace a trigger rule",
)
async def replace_trigger_rule(request: Request[Any, Any, Any], rule_id: ResourceId) -> ASGIResponse:
    repository, checks = _parts(request)
    try:
        rule = await _read_rule(request)
    except BodyError as e:
        return refuse(e)
    if await repository.get(rule_id) is None:
        raise NotFoundException(f"trigger rule {rule_id} does not exist")
    result = await checks.validation_result(rule, rule_id)
    if await repository.update(rule_id, rule.body) is None:
        raise NotFoundException(f"trigger rule {rule_id} does not exist")
    return json_response(RuleSaved(rule_id=rule_id, status="updated", validation_result=result))


@delete(
    PATH + "/{rule_id:int}",
    opt={**scope_opt("write"), **_doc({204: Answer("Deleted."), 404: NOT_FOUND})},
    summary="Delete a trigger rule (its firings stay, as history)",
    status_code=204,
)
async def delete_trigger_rule(request: Request[Any, Any, Any], rule_id: ResourceId) -> None:
    if not await _parts(request)[0].delete(rule_id):
        raise NotFoundException(f"trigger rule {rule_id} does not exist")


@post(
    PATH + "/test",
    opt={
        **scope_opt("read"),
        **_doc(
            {200: Answer("Matched or not, with each condition's result.", RuleTestResult), 404: NOT_FOUND},
            RuleTestBody,
            _TEST_EXAMPLE,
        ),
    },
    summary="Test a rule (saved or in the body) against an event (a sample or a stored one)",
    status_code=200,
)
async def test_trigger_rule(request: Request[Any, Any, Any]) -> ASGIResponse:
    try:
        body = decode_json_body(await request.body(), RuleTestBody)
        if (body.rule_id is None) == (body.rule is None):
            raise BodyError(422, "rule: give exactly one of rule_id (a saved rule) and rule (a body)", "rule")
        if (body.event_id is None) == (body.event is None):
            raise BodyError(422, "event: give exactly one of event_id (a stored event) and event", "event")
        rule = compile_rule(body.rule) if body.rule is not None else await _saved_rule(request, body.rule_id)
        event = await _event(request, body)
    except RuleError as e:
        return refuse(BodyError(422, f"rule.{e}", f"rule.{e.field}"))
    except BodyError as e:
        return refuse(e)
    return json_response(_test(rule, event, body))


TRIGGER_RULE_HANDLERS: Final = (
    create_trigger_rule,
    list_trigger_rules,
    get_trigger_rule,
    replace_trigger_rule,
    delete_trigger_rule,
    test_trigger_rule,
)
"""The route handlers to add to the events app (port 3009)."""


def _parts(request: Request[Any, Any, Any]) -> tuple[TriggerRuleRepository, TriggerRuleChecks]:
    ctx = context_of(request, EventsApiContext)
    if ctx.trigger_rules is None or ctx.trigger_rule_checks is None:
        raise ServiceUnavailableException("trigger rules are not served by this process")
    return ctx.trigger_rules, ctx.trigger_rule_checks


async def _read_rule(request: Request[Any, Any, Any]) -> CompiledTriggerRule:
    """The body as a checked, compiled rule. Raises `BodyError` (400 or 422 naming the field)."""
    body = decode_json_body(await request.body(), TriggerRuleBody)
    try:
        return compile_rule(body)
    except RuleError as e:
        raise BodyError(422, str(e), e.field) from e


async def _saved_rule(request: Request[Any, Any, Any], rule_id: int | None) -> CompiledTriggerRule:
    assert rule_id is not None
    stored = await _parts(request)[0].get(rule_id)
    if stored is None:
        raise NotFoundException(f"trigger rule {rule_id} does not exist")
    return compile_rule(stored.body())


async def _event(request: Request[Any, Any, Any], body: RuleTestBody) -> Event:
    if body.event is not None:
        try:
            event = to_event(body.event, utcnow())
        except OverflowError:  # year 1 at +05:00, year 9999 at -05:00
            raise BodyError(
                422, "event.timestamp: out of range once converted to UTC", "event.timestamp"
            ) from None
        normalize([event])  # as the pipeline would see it: trimmed, with its fingerprint
        return event
    assert body.event_id is not None
    stored = await context_of(request, EventsApiContext).events.get(body.event_id)
    if stored is None:
        raise NotFoundException(f"event {body.event_id} does not exist")
    return stored


def _test(rule: CompiledTriggerRule, event: Event, body: RuleTestBody) -> RuleTestResult:
    explained = rule.condition.explain(event)
    after = None
    if rule.after is not None:
        outcome = rule.after.explain(event)
        after = ConditionsOutcome(matched=outcome.matched, conditions=outcome.leaves)
    notes: list[str] = []
    spec = rule.body
    if not spec.active:
        notes.append("the rule is inactive (active: false): it is never evaluated")
    if event.suppressed_reason is not None:
        notes.append(f"the event is suppressed ({event.suppressed_reason}): rules never evaluate it")
    if spec.absence is not None:
        notes.append(
            "an absence rule: a matching event re-arms it (or closes a deadline opened by 'after'); it fires "
            f"when none arrives within {spec.absence.within_minutes} minutes"
        )
    elif spec.threshold > 1:
        notes.append(
            f"a match counts towards the threshold: it fires at {spec.threshold} matches within "
            f"{spec.time_window_minutes} minutes"
        )
    if spec.group_by:
        notes.append("counted per group of " + ", ".join(spec.group_by))
    return RuleTestResult(
        matched=explained.matched,
        conditions=explained.leaves,
        after=after,
        rule_id=body.rule_id,
        event_id=body.event_id,
        notes=notes,
    )
