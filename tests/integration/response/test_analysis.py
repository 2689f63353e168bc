"""Analysis against a real PostgreSQL: stored events, firings, templates and outcomes in, a stored
decision with its inputs out (docs/response.md "Analysis and risk")."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest

from opsresponder.config import AnalysisConfig, RiskConfig
from opsresponder.core.batch import Batch
from opsresponder.core.event import Event, EventState
from opsresponder.core.severity import Severity
from opsresponder.core.silence import SilenceMatcher, SilenceSpec
from opsresponder.response.analysis import (
    AnalysisContext,
    AnalysisOptions,
    Analyzer,
    AnalyzeRequest,
    EventNotFound,
    UserPreferences,
    decision_answer,
)
from opsresponder.response.risk import RiskMatrix
from opsresponder.rules.evaluation import FIRINGS, Firing
from opsresponder.rules.templates import Script, ScriptCatalog, load_script_catalog, read_template
from opsresponder.rules.templates.files import read_template_files
from opsresponder.rules.templates.scripts import ScriptParameter
from opsresponder.rules.triggers import TriggerRuleBody
from opsresponder.store.correlations import CorrelationRepository
from opsresponder.store.decisions import DecisionRepository, StoredDecision
from opsresponder.store.events import EventRepository
from opsresponder.store.firings import FiringRepository, FiringsWriter
from opsresponder.store.outcomes import ActionOutcome, OutcomeRepository
from opsresponder.store.response_templates import ResponseTemplateRepository
from opsresponder.store.silences import SilenceRepository
from opsresponder.store.trigger_rules import TriggerRuleRepository
from tests.factories import make_event, prepared

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
WINDOW = timedelta(minutes=5)
PATTERN = "p-cpu"
CONFIG = Path(__file__).resolve().parents[3] / "config"

CATALOG = ScriptCatalog(
    [
        Script(id=1, name="check_cpu", risk_level="low", action_type="diagnostic", timeout_seconds=60,
               description="Samples CPU usage.", command=["true"],
               parameters=[ScriptParameter(name="sample_seconds", type="integer")]),
        Script(id=2, name="list_procs", risk_level="low", action_type="diagnostic", timeout_seconds=120,
               command=["true"]),
        Script(id=3, name="kill_procs", risk_level="medium", action_type="remediation", timeout_seconds=300,
               rollback="restore_procs", command=["true"]),
        Script(id=4, name="restore_procs", risk_level="medium", action_type="remediation", command=["true"]),
        Script(id=5, name="restart_service", risk_level="high", action_type="service_restart",
               approval_required=True, timeout_seconds=600, command=["true"]),
    ],
    "test catalog",
)  # fmt: skip


def template(key: str, actions: list[dict[str, Any]], **fields: Any) -> Any:
    body = {"id": key, "name": key, "version": "1", "actions": actions, **fields}
    return read_template(msgspec.json.encode(body), "json", CATALOG)


DIAGNOSTIC = {"id": "diag", "name": "CPU diagnostic", "type": "diagnostic", "automation_script": "check_cpu"}
CPU_TRIGGER = {"event_type": "threshold_breach", "conditions": ["metadata.cpu_usage > {{ threshold }}"]}
THRESHOLD = {"name": "threshold", "type": "float", "default": 90}


class World:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.events = EventRepository(pool, WINDOW, writers=[FiringsWriter()])
        self.templates = ResponseTemplateRepository(pool)
        self.decisions = DecisionRepository(pool)
        self.outcomes = OutcomeRepository(pool)
        self.silences = SilenceRepository(pool)
        self.now = NOW
        self.analyzer = self.make_analyzer()

    def make_analyzer(self, catalog: ScriptCatalog = CATALOG, **config: Any) -> Analyzer:
        return Analyzer(
            events=self.events,
            templates=self.templates,
            firings=FiringRepository(self.pool),
            correlations=CorrelationRepository(self.pool),
            decisions=self.decisions,
            outcomes=self.outcomes,
            catalog=catalog,
            risk=RiskMatrix(RiskConfig()),
            config=AnalysisConfig(**{"approvers": ["alice", "bob"], **config}),
            clock=lambda: self.now,
            silences=self.silences,
        )

    async def event(self, *, fired_rules: Sequence[int] = (), **fields: Any) -> Event:
        fields.setdefault("metadata", {"cpu_usage": 95, "pattern": {"id": PATTERN}})
        [event] = prepared(make_event(now=NOW - timedelta(minutes=1), **fields))
        batch = Batch([event])
        batch.add(FIRINGS, [Firing(r, "", "trigger", NOW, (event,), {}) for r in fired_rules])
        await self.events.store_batch([event], batch=batch)
        assert event.id is not None
        return event

    async def maintenance(self, host: str = "web-01") -> None:
        """An active silence on `host`: a real maintenance window (a request's ``maintenance_window``
        counts only with one)."""
        await self.silences.create(
            SilenceSpec(
                matchers=[SilenceMatcher(field="host", value=host)], starts_at=NOW - timedelta(hours=1)
            ),
            "ops",
        )

    async def analyze(self, event: Event, **context: Any) -> StoredDecision:
        assert event.id is not None
        request = AnalyzeRequest(event_id=event.id, context=AnalysisContext(**context))
        return await self.analyzer.analyze(request, requested_by="ops")


@pytest.fixture
def world(db_pool: asyncpg.Pool) -> World:
    return World(db_pool)


def outcome(event: Event, key: str, i: int, *, success: bool = True, **fields: Any) -> ActionOutcome:
    values: dict[str, Any] = {
        "execution_id": f"x{i}",
        "decision_id": 1,
        "event_id": event.id,
        "template_id": "cpu",
        "action_key": key,
        "script": "check_cpu",
        "event_type": event.event_type,
        "pattern_id": PATTERN,
        "target": event.host,
        "status": "completed" if success else "failed",
        "success": success,
        "duration_seconds": 30.0 + i,
        "finished_at": NOW - timedelta(days=1),
    }
    values.update(fields)
    return ActionOutcome(**values)


async def test_a_diagnostic_at_exactly_the_threshold_needs_no_approval(world: World) -> None:
    """low (0.1, from the asset) + diagnostic (0.1) + after hours (0, from the request) + outside
    maintenance (0.1, no silence) = 0.3 exactly: not over 0.3."""
    await world.templates.create(
        template(
            "cpu",
            [{**DIAGNOSTIC, "parameters": {"sample_seconds": "{{ seconds }}"}, "required": True}],
            triggers=[CPU_TRIGGER],
            variables=[THRESHOLD, {"name": "seconds", "type": "integer", "default": 5}],
        ),
        "ops",
    )
    event = await world.event(
        metadata={"cpu_usage": 95, "pattern": {"id": PATTERN}, "asset": {"name": "web", "criticality": "low"}}
    )
    decision = await world.analyze(event, business_hours=False)

    assert decision.template_id == "cpu" and decision.template_version == "1"
    assert decision.variables == {"threshold": 90.0, "seconds": 5}
    assert decision.target == "web-01" and decision.pattern_id == PATTERN and decision.requested_by == "ops"
    [action] = decision.recommended_actions
    assert action.parameters == {"sample_seconds": 5}
    assert (action.risk_score, action.risk_level, action.approval_required) == (0.3, "low", False)
    assert action.estimated_duration_minutes == 1.0  # no history: the script's 60 s timeout
    assert action.success_probability == 0.8 and action.script == "check_cpu"
    assert decision.analysis["recommended_action"] == "investigate"
    assert decision.analysis["confidence_score"] == 0.4  # the prior, believed half (no history)
    assert decision.analysis["risk_level"] == "low"
    assert decision.analysis["business_impact"] == "none"  # a lone event on a low-criticality asset
    assert decision.analysis["estimated_resolution_time_minutes"] == 1
    assert decision.approval["required"] is False and decision.approval["approvers"] == []

    context = decision.inputs["context"]
    assert context["criticality"] == {"value": "low", "source": "asset", "detail": "web"}
    # Nothing but the request knows the hours (no calendar, no flag): its value is taken.
    assert context["business_hours"] == {
        "value": False,
        "source": "request",
        "detail": None,
        "requested": False,
        "known": None,
        "known_source": "default",
    }
    assert context["maintenance_window"]["value"] is False
    assert context["maintenance_window"]["source"] == "silence"
    assert context["given"]["business_hours"] is False
    assert decision.inputs["risk"]["diag"]["factors"] == {
        "system_criticality": 0.1,
        "action_type": 0.1,
        "business_hours": 0.0,
        "maintenance_window": 0.1,
    }
    assert decision.inputs["template"]["why"].startswith("its trigger matched")
    assert decision.inputs["correlation_group_size"] == 1

    stored = await world.decisions.get(decision.decision_id)
    assert stored == decision
    assert decision_answer(decision) == {
        "decision_id": decision.decision_id,
        "analysis_result": {
            "recommended_action": "investigate",
            "confidence_score": 0.4,
            "risk_level": "low",
            "business_impact": "none",
            "reasoning": decision.analysis["reasoning"],
            "estimated_resolution_time_minutes": 1,
        },
        "recommended_actions": [
            {
                "action_id": action.action_id,
                "action_type": "diagnostic",
                "action_name": "CPU diagnostic",
                "description": "Samples CPU usage.",
                "risk_level": "low",
                "approval_required": False,
                "estimated_duration_minutes": 1.0,
                "success_probability": 0.8,
            }
        ],
        "approval_requirements": {
            "required": False,
            "reason": "Low risk actions within approved parameters (highest risk score 0.3, not over 0.3).",
            "approvers": [],
        },
    }
    assert "Template cpu v1 applies" in decision.analysis["reasoning"]
    assert "low criticality from asset" in decision.analysis["reasoning"]


async def test_a_medium_risk_remediation_needs_approval(world: World) -> None:
    await world.templates.create(
        template(
            "cpu",
            [
                {**DIAGNOSTIC, "required": True},
                {"id": "kill", "name": "Kill", "type": "remediation", "automation_script": "kill_procs",
                 "depends_on": ["diag"], "required": True},
                {"id": "tell", "name": "Tell", "type": "notification", "channels": ["email"],
                 "depends_on": ["kill"]},
            ],
            triggers=[{"event_type": "threshold_breach"}],
        ),
        "ops",
    )  # fmt: skip
    event = await world.event()
    await world.maintenance()
    # medium (default) 0.2, after hours, in maintenance: diagnostic 0.3, remediation 0.4, notification 0.2.
    decision = await world.analyze(event, business_hours=False, maintenance_window=True)
    by_key = {a.key: a for a in decision.recommended_actions}
    assert [a.key for a in decision.recommended_actions] == ["diag", "kill", "tell"]
    assert [a.action_id for a in decision.recommended_actions] == sorted(
        a.action_id for a in decision.recommended_actions
    )
    assert (by_key["diag"].risk_score, by_key["diag"].approval_required) == (0.3, False)
    assert (by_key["kill"].risk_score, by_key["kill"].approval_required) == (0.4, True)
    assert by_key["kill"].risk_level == "medium" and by_key["kill"].rollback_script == "restore_procs"
    assert (by_key["tell"].risk_score, by_key["tell"].approval_required) == (0.2, False)
    assert by_key["tell"].script is None and by_key["tell"].channels == ["email"]
    assert by_key["tell"].timeout_seconds == 60.0
    assert decision.analysis["recommended_action"] == "remediate"
    assert decision.approval == {
        "required": True,
        "reason": "Approval required (kill: risk score 0.4 is over 0.3).",
        "approvers": ["alice", "bob"],
    }
    # diag 1 min -> kill 5 min -> tell 1 min along the chain.
    assert decision.analysis["estimated_resolution_time_minutes"] == 7
    assert decision.inputs["context"]["criticality"]["source"] == "default"
    answer = decision_answer(decision)
    assert [a["action_type"] for a in answer["recommended_actions"]] == [
        "diagnostic",
        "remediation",
        "notification",
    ]


@pytest.mark.parametrize(
    ("action", "script", "reason"),
    [
        ({"approval_required": True}, "check_cpu", "the template action requires approval"),
        ({}, "restart_service", "script restart_service requires approval"),
    ],
)
async def test_approval_demanded_by_the_action_or_its_script(
    world: World, action: dict[str, Any], script: str, reason: str
) -> None:
    await world.templates.create(
        template(
            "cpu",
            [{**DIAGNOSTIC, "automation_script": script, "type": "remediation", **action}],
            triggers=[{"event_type": "threshold_breach"}],
        ),
        "ops",
    )
    event = await world.event()
    await world.maintenance()
    decision = await world.analyze(
        event, system_criticality="low", business_hours=False, maintenance_window=True
    )
    [decided] = decision.recommended_actions
    assert decided.approval_required is True
    assert decision.approval["required"] is True
    assert reason in decision.approval["reason"]
    if script == "check_cpu":
        assert decided.risk_score == 0.2  # the score alone would not have asked
        assert "risk score" not in decision.approval["reason"]
    else:
        assert decided.risk_level == "high"  # the catalog's level is higher than the matrix's


async def test_history_moves_success_probability_and_confidence(world: World) -> None:
    await world.templates.create(
        template("cpu", [{**DIAGNOSTIC, "required": True}], triggers=[{"event_type": "threshold_breach"}]),
        "ops",
    )
    event = await world.event()
    before = await world.analyze(event)
    assert before.recommended_actions[0].success_probability == 0.8
    assert before.analysis["confidence_score"] == 0.4

    # Six successes on the same pattern (30..35 s), plus outcomes that must not count: skipped, too old,
    # another template, another action.
    await world.outcomes.record([outcome(event, "diag", i) for i in range(6)])
    await world.outcomes.record(
        [
            outcome(event, "diag", 10, success=False, status="skipped"),
            outcome(event, "diag", 11, success=False, finished_at=NOW - timedelta(days=91)),
            outcome(event, "diag", 12, success=False, template_id="other"),
            outcome(event, "other", 13, success=False),
        ]
    )
    after = await world.analyze(event)
    [action] = after.recommended_actions
    assert action.success_probability == round((6 + 0.8 * 4) / (6 + 4), 4) == 0.92
    assert action.estimated_duration_minutes == round(32.5 / 60, 2)  # the median success
    assert after.analysis["confidence_score"] == round(0.92 * (0.5 + 0.5 * 6 / 10), 4)
    history = after.inputs["history"]["actions"]["diag"]
    assert (history["basis"], history["runs"], history["successes"]) == ("pattern", 6, 6)

    # A re-recorded outcome replaces its row; then failures drag the probability under 0.5: escalate.
    await world.outcomes.record([outcome(event, "diag", 0)])
    await world.outcomes.record([outcome(event, "diag", 20 + i, success=False) for i in range(14)])
    worse = await world.analyze(event)
    assert worse.recommended_actions[0].success_probability == round((6 + 3.2) / 24, 4)
    assert worse.analysis["recommended_action"] == "escalate"
    assert "success probability below 0.5" in worse.analysis["reasoning"]


async def test_history_of_the_event_type_when_the_pattern_has_none(world: World) -> None:
    await world.templates.create(
        template("cpu", [DIAGNOSTIC], triggers=[{"event_type": "threshold_breach"}]), "ops"
    )
    event = await world.event()
    await world.outcomes.record(
        [outcome(event, "diag", i, pattern_id="another", success=i < 2) for i in range(4)]
    )
    decision = await world.analyze(event)
    assert decision.inputs["history"]["actions"]["diag"]["basis"] == "event_type"
    assert decision.recommended_actions[0].success_probability == round((2 + 3.2) / 8, 4)


async def test_a_template_linked_to_a_fired_rule_comes_before_triggers(world: World) -> None:
    rule = await TriggerRuleRepository(world.pool).create(
        TriggerRuleBody(name="cpu", conditions={"event_type": "threshold_breach"}), "ops"
    )
    await world.templates.create(template("linked", [DIAGNOSTIC], trigger_rule_id=rule.rule_id), "ops")
    await world.templates.create(
        template("matched", [DIAGNOSTIC], triggers=[CPU_TRIGGER], variables=[THRESHOLD]), "ops"
    )
    fired = await world.event(fired_rules=[rule.rule_id])
    decision = await world.analyze(fired)
    assert decision.template_id == "linked"
    assert decision.inputs["fired_rules"] == [rule.rule_id]
    assert (
        decision.inputs["template"]["why"]
        == f"linked to trigger rule {rule.rule_id}, which fired for this event"
    )
    assert [a["id"] for a in decision.inputs["alternatives"]] == ["matched"]

    other = await world.event(title="another", fired_rules=[])
    assert (await world.analyze(other)).template_id == "matched"
    cool = await world.event(title="cool", metadata={"cpu_usage": 50})
    assert (await world.analyze(cool)).template_id is None


async def test_the_most_specific_trigger_wins(world: World) -> None:
    await world.templates.create(
        template("broad", [DIAGNOSTIC], triggers=[{"event_type": "threshold_breach"}]), "ops"
    )
    await world.templates.create(
        template(
            "narrow",
            [DIAGNOSTIC],
            triggers=[{**CPU_TRIGGER, "conditions": [*CPU_TRIGGER["conditions"], "severity == 'high'"]}],
            variables=[THRESHOLD],
        ),
        "ops",
    )
    decision = await world.analyze(await world.event())
    assert decision.template_id == "narrow"
    assert decision.inputs["alternatives"] == [
        {"id": "broad", "version": "1", "why": "its trigger matched: event_type threshold_breach"}
    ]


async def test_a_variable_without_default_keeps_a_template_out(world: World) -> None:
    await world.templates.create(
        template(
            "needs_value",
            [{**DIAGNOSTIC, "parameters": {"sample_seconds": "{{ seconds }}"}}],
            triggers=[{"event_type": "threshold_breach", "conditions": ["severity == 'high'"]}],
            variables=[{"name": "seconds", "type": "integer"}],
        ),
        "ops",
    )
    await world.templates.create(
        template("fallback", [DIAGNOSTIC], triggers=[{"event_type": "threshold_breach"}]), "ops"
    )
    decision = await world.analyze(await world.event())
    assert decision.template_id == "fallback"
    [alternative] = decision.inputs["alternatives"]
    assert alternative["not_applicable"] == "variable seconds has no default and no value"
    assert (
        "template needs_value cannot apply: variable seconds has no default" in decision.analysis["reasoning"]
    )


@pytest.mark.parametrize(
    ("fields", "recommended", "impact"),
    [
        ({"severity": Severity.CRITICAL}, "escalate", "low"),
        ({"severity": Severity.MEDIUM}, "investigate", "low"),
        ({"severity": Severity.LOW}, "ignore", "low"),
        ({"severity": Severity.CRITICAL, "state": EventState.RESOLVED}, "ignore", "none"),
    ],
)
async def test_without_a_template(
    world: World, fields: dict[str, Any], recommended: str, impact: str
) -> None:
    decision = await world.analyze(await world.event(**fields))
    assert decision.template_id is None and decision.recommended_actions == []
    assert decision.analysis["recommended_action"] == recommended
    assert decision.analysis["business_impact"] == impact
    assert decision.analysis["estimated_resolution_time_minutes"] == 0
    assert decision.approval == {"required": False, "reason": "No actions to approve.", "approvers": []}
    assert decision.analysis["reasoning"].startswith("No response template applies")


async def test_maintenance_and_business_hours_from_silences_and_the_asset_calendar(world: World) -> None:
    await world.silences.create(
        SilenceSpec(
            matchers=[SilenceMatcher(field="host", value="web-01")], starts_at=NOW - timedelta(hours=1)
        ),
        "ops",
    )
    calendar = {"days": ["mon"], "start": "08:00", "end": "10:00", "timezone": "UTC"}
    asset = {"name": "web", "criticality": "high", "business_hours": calendar, "in_business_hours": False}
    event = await world.event(metadata={"asset": asset})
    decision = await world.analyze(event)
    context = decision.inputs["context"]
    # The calendar is read at the analysis's time (Monday 09:00), not the event's flag.
    assert context["business_hours"] == {"value": True, "source": "asset_calendar", "detail": "web"}
    assert context["maintenance_window"]["value"] is True
    assert context["maintenance_window"]["source"] == "silence"
    assert context["criticality"]["value"] == "high"


async def test_an_unknown_event_is_refused(world: World) -> None:
    with pytest.raises(EventNotFound):
        await world.analyzer.analyze(AnalyzeRequest(event_id=424242), requested_by="ops")


async def test_the_answer_leaves_out_what_the_options_turn_off(world: World) -> None:
    await world.templates.create(
        template("cpu", [DIAGNOSTIC], triggers=[{"event_type": "threshold_breach"}]), "ops"
    )
    decision = await world.analyze(await world.event())
    answer = decision_answer(
        decision,
        AnalysisOptions(
            include_recommendations=False, include_risk_assessment=False, include_impact_analysis=False
        ),
    )
    assert set(answer) == {"decision_id", "analysis_result", "approval_requirements"}
    assert set(answer["analysis_result"]) == {"recommended_action", "confidence_score", "reasoning"}
    only_risk_off = decision_answer(decision, AnalysisOptions(include_risk_assessment=False))
    assert "risk_level" not in only_risk_off["recommended_actions"][0]


def test_the_request_refuses_unknown_fields_and_needs_only_the_event_id() -> None:
    assert msgspec.json.decode(b'{"event_id": 5}', type=AnalyzeRequest).context == AnalysisContext()
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.json.decode(b'{"event_id": 5, "context": {"criticality": "high"}}', type=AnalyzeRequest)
    with pytest.raises(msgspec.ValidationError, match="event_id"):
        msgspec.json.decode(b"{}", type=AnalyzeRequest)
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(
            b'{"event_id": 5, "context": {"system_criticality": "huge"}}', type=AnalyzeRequest
        )


async def test_a_request_that_does_not_auto_approve_low_risk_asks_for_every_script(world: World) -> None:
    await world.templates.create(
        template(
            "cpu",
            [DIAGNOSTIC, {"id": "tell", "name": "Tell", "type": "notification", "channels": ["email"]}],
            triggers=[{"event_type": "threshold_breach"}],
        ),
        "ops",
    )
    preferences = UserPreferences(auto_approve_low_risk=False, notification_channels=["slack"])
    await world.maintenance()
    decision = await world.analyze(
        await world.event(),
        system_criticality="low",
        business_hours=False,
        maintenance_window=True,
        user_preferences=preferences,
    )
    diag, tell = decision.recommended_actions
    assert (diag.risk_score, diag.approval_required) == (0.2, True)  # the score alone would not ask
    assert tell.approval_required is False
    assert decision.approval["reason"] == (
        "Approval required (diag: the request does not auto-approve low-risk actions)."
    )
    assert decision.inputs["context"]["given"]["user_preferences"]["notification_channels"] == ["slack"]


async def test_parameters_that_do_not_fit_the_script_keep_a_template_out(world: World) -> None:
    """A template checked against an older catalog, where the parameter was text: the executor would
    refuse the plan, so analysis does not recommend it."""
    older = ScriptCatalog(
        [
            Script(
                id=1,
                name="check_cpu",
                risk_level="low",
                command=["true"],
                parameters=[ScriptParameter(name="sample_seconds", type="string")],
            )
        ]
    )
    body = {
        "id": "stale",
        "name": "stale",
        "actions": [{**DIAGNOSTIC, "parameters": {"sample_seconds": "a while"}}],
        "triggers": [{"event_type": "threshold_breach"}],
    }
    await world.templates.create(read_template(msgspec.json.encode(body), "json", older), "ops")
    decision = await world.analyze(await world.event())
    assert decision.template_id is None
    [alternative] = decision.inputs["alternatives"]
    assert alternative["not_applicable"].startswith("action diag's parameters:")
    assert "sample_seconds" in alternative["not_applicable"]


async def test_the_spec_example_with_the_shipped_catalog_and_templates(db_pool: asyncpg.Pool) -> None:
    """config/templates/high_cpu_investigation.yaml (service-spec.md's template) on a high-CPU event."""
    config = CONFIG
    catalog = load_script_catalog(config / "scripts.yaml")
    world = World(db_pool)
    await world.templates.sync_files(read_template_files(config / "templates", catalog))
    world.analyzer = world.make_analyzer(catalog)
    event = await world.event(severity=Severity.CRITICAL, metadata={"cpu_usage": 97.5})
    decision = await world.analyze(event, system_criticality="high", business_hours=True)
    assert (decision.template_id, decision.template_version) == ("high_cpu_investigation", "1.2")
    actions = {a.key: a for a in decision.recommended_actions}
    assert list(actions) == [
        "diagnostic_cpu",
        "diagnostic_processes",
        "remediation_kill_processes",
        "notification_resolved",
    ]
    kill = actions["remediation_kill_processes"]
    assert kill.parameters == {"max_processes": 3} and kill.approval_required
    assert actions["notification_resolved"].script is None
    assert actions["notification_resolved"].channels == ["email", "slack"]
    assert decision.analysis["recommended_action"] == "remediate"
    assert decision.approval["required"] is True
    answer = decision_answer(decision)
    assert [a["action_name"] for a in answer["recommended_actions"]] == [
        "CPU Diagnostic",
        "Process Analysis",
        "Kill High CPU Processes",
        "Resolution Notification",
    ]


async def test_the_request_may_raise_risk_but_never_lower_it(world: World) -> None:
    """A critical host in the inventory, inside business hours by its calendar, with no maintenance
    silence: a request claiming low criticality, after hours and maintenance changes nothing (the remediation
    still needs approval); each factor records what was asked, what was known and what was used. A request
    asking for more caution is taken."""
    await world.templates.create(
        template(
            "cpu", [{**DIAGNOSTIC, "type": "remediation"}], triggers=[{"event_type": "threshold_breach"}]
        ),
        "ops",
    )
    calendar = {"days": ["mon"], "start": "08:00", "end": "10:00", "timezone": "UTC"}
    asset = {"name": "db", "criticality": "critical", "business_hours": calendar}
    event = await world.event(metadata={"asset": asset})
    decision = await world.analyze(
        event, system_criticality="low", business_hours=False, maintenance_window=True
    )
    [action] = decision.recommended_actions
    # critical 0.4 + diagnostic script 0.1 + business hours 0.2 + outside maintenance 0.1 = 0.8 (the request
    # alone would have made it 0.1 + 0.1 + 0 + 0 = 0.2, no approval).
    assert action.risk_score == 0.8 and action.approval_required is True
    context = decision.inputs["context"]
    criticality = {"value": "critical", "source": "asset", "detail": "db", "requested": "low",
                   "known": "critical", "known_source": "asset"}  # fmt: skip
    assert context["criticality"] == criticality
    hours = {"value": True, "source": "asset_calendar", "detail": "db", "requested": False, "known": True,
             "known_source": "asset_calendar"}  # fmt: skip
    assert context["business_hours"] == hours
    maintenance = context["maintenance_window"]
    assert maintenance["value"] is False and maintenance["requested"] is True
    assert maintenance["known"] is False
    assert "no active silence" in maintenance["detail"]

    # With a real maintenance window the request's maintenance counts; a stricter criticality is taken.
    await world.maintenance("web-02")
    stricter = await world.analyze(
        await world.event(host="web-02", metadata={"asset": {**asset, "criticality": "low"}}),
        system_criticality="high",
        maintenance_window=True,
    )
    context = stricter.inputs["context"]
    assert context["criticality"]["value"] == "high" and context["criticality"]["source"] == "request"
    assert context["maintenance_window"]["value"] is True
    assert context["maintenance_window"]["source"] == "silence"
