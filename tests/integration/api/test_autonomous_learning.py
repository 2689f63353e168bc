"""Feedback and insights over real sockets, with real scripts: feedback moves the confidence of the next
analysis by exactly the answered adjustment, ``dangerous`` demotes (the next analysis requires approval and
says why), insights list the statistics and the demotions; every refusal of the feedback endpoint."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import msgspec

from opsresponder.api.insights import Insights
from opsresponder.app import OpsResponder
from opsresponder.response.learning import FeedbackAnswer
from tests.integration.api import test_autonomous_executions as started
from tests.integration.api.autonomous import (
    DONE,
    analyze,
    auth,
    execute,
    store_event,
    wait_for,
)
from tests.waiting import eventually

# The service on the test playbooks and its two clients, started as the execution tests start them.
playbooks, service, events, client = started.playbooks, started.service, started.events, started.client


async def executed(client: httpx.AsyncClient, decision_id: int) -> str:
    answer = await execute(client, decision_id)
    assert answer.status_code == 202, answer.text
    done = await wait_for(client, answer.json()["execution_id"], DONE)
    assert done["status"] == "completed", done
    execution_id: str = done["execution_id"]
    return execution_id


async def feedback(client: httpx.AsyncClient, scope: str = "execute", **body: Any) -> httpx.Response:
    answer = await client.post("/api/v1/autonomous/feedback", json=body, headers=auth(scope))
    if answer.status_code == 201:
        msgspec.json.decode(answer.content, type=FeedbackAnswer)  # the documented shape
    return answer


async def insights(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    answer = await client.get("/api/v1/autonomous/insights", params=params, headers=auth("read"))
    assert answer.status_code == 200, answer.text
    msgspec.json.decode(answer.content, type=Insights)
    found: dict[str, Any] = answer.json()
    return found


async def test_feedback_moves_the_next_analysis_and_dangerous_demotes(
    client: httpx.AsyncClient, events: httpx.AsyncClient
) -> None:
    event_id = await store_event(events, "test_quick")
    decision = await analyze(client, event_id)
    execution_id = await executed(client, decision["decision_id"])
    before = await analyze(client, event_id)

    good = await feedback(
        client,
        execution_id=execution_id,
        decision_id=decision["decision_id"],
        feedback_type="effectiveness",
        rating=5,
        feedback="helpful",
        comments="Resolved quickly",
        would_approve_again=True,
    )
    assert good.status_code == 201, good.text
    answer = good.json()
    assert answer["status"] == "recorded" and answer["feedback_id"] >= 1
    impact = answer["learning_impact"]
    assert impact["confidence_adjustment"] > 0
    assert impact["template_updates"] == ["quick_playbook"]
    assert len(impact["pattern_updates"]) == 1

    after = await analyze(client, event_id)
    moved = after["analysis_result"]["confidence_score"] - before["analysis_result"]["confidence_score"]
    assert round(moved, 4) == impact["confidence_adjustment"]
    first = after["recommended_actions"][0]
    assert first["success_probability"] > before["recommended_actions"][0]["success_probability"]

    # Another person's neutral feedback (the admin token's): stored, no effect.
    neutral = await feedback(
        client, "admin", execution_id=execution_id, decision_id=decision["decision_id"],
        feedback_type="timeliness", rating=3,
    )  # fmt: skip
    assert neutral.status_code == 201
    assert neutral.json()["learning_impact"] == {
        "confidence_adjustment": 0.0,
        "template_updates": [],
        "pattern_updates": [],
    }

    seen = await insights(client, template_id="quick_playbook")
    actions = {a["action_key"]: a for a in seen["actions"]}
    assert set(actions) == {"diag_one", "diag_two"} and seen["total_count"] == 2
    assert actions["diag_one"]["runs"] == 1 and actions["diag_one"]["success_rate"] == 1.0
    assert actions["diag_one"]["feedback_count"] == 2 and actions["diag_one"]["feedback_positive"] == 1
    assert actions["diag_one"]["mean_success_score"] == 1.0 and actions["diag_one"]["demoted"] is False
    assert seen["templates"][0]["template_id"] == "quick_playbook" and seen["templates"][0]["executions"] == 1
    assert seen["policy_changes"] == []

    bad = await feedback(
        client, execution_id=execution_id, decision_id=decision["decision_id"], feedback_type="safety",
        rating=1, feedback="dangerous", comments="It restarted the wrong thing",
    )  # fmt: skip
    assert bad.status_code == 201, bad.text
    assert bad.json()["learning_impact"]["confidence_adjustment"] < 0
    # One feedback per person and execution: the same token's "dangerous" replaced its "helpful".
    assert bad.json()["feedback_id"] == answer["feedback_id"]

    demoted = await analyze(client, event_id)
    requirements = demoted["approval_requirements"]
    assert requirements["required"] is True
    assert "learning demoted it to approval required (feedback" in requirements["reason"]
    assert "by execute called it dangerous" in requirements["reason"]
    assert all(a["approval_required"] for a in demoted["recommended_actions"])

    seen = await insights(client, template_id="quick_playbook")
    changes = seen["policy_changes"]
    assert {(c["action_key"], c["change"]) for c in changes} == {
        ("diag_one", "demoted"),
        ("diag_two", "demoted"),
    }
    assert all("called it dangerous" in c["reason"] and c["at"] for c in changes)
    assert all(a["demoted"] and "dangerous" in a["policy_reason"] for a in seen["actions"])
    assert (await insights(client, template_id="no_such"))["actions"] == []
    page = await insights(client, limit=1, offset=1)
    assert len(page["actions"]) == 1 and page["total_count"] == 2 and page["has_more"] is False


async def test_feedback_refusals(client: httpx.AsyncClient, events: httpx.AsyncClient) -> None:
    event_id = await store_event(events, "test_quick")
    decision = await analyze(client, event_id)
    other = await analyze(client, event_id)
    execution_id = await executed(client, decision["decision_id"])
    valid = {
        "execution_id": execution_id,
        "decision_id": decision["decision_id"],
        "feedback_type": "accuracy",
        "rating": 4,
    }

    malformed = await client.post(
        "/api/v1/autonomous/feedback",
        content=b"{nope",
        headers={**auth("execute"), "Content-Type": "application/json"},
    )
    assert malformed.status_code == 400, malformed.text

    wrong: list[tuple[dict[str, Any], str]] = [
        ({"rating": 0}, "rating"),
        ({"rating": 6}, "rating"),
        ({"rating": "5"}, "rating"),
        ({"feedback_type": "usefulness"}, "feedback_type"),
        ({"feedback": "meh"}, "feedback"),
        ({"would_approve_again": "yes"}, "would_approve_again"),
        ({"decision_id": 0}, "decision_id"),
        ({"surprise": 1}, "surprise"),
    ]
    for change, field in wrong:
        answer = await feedback(client, **{**valid, **change})
        assert answer.status_code == 422, (change, answer.text)
        assert answer.json()["field"] == field, (change, answer.json())
    missing = await feedback(client, **{k: v for k, v in valid.items() if k != "feedback_type"})
    assert missing.status_code == 422 and missing.json()["field"] == "feedback_type"

    assert (await feedback(client, **{**valid, "execution_id": "exec_999999"})).status_code == 404
    assert (await feedback(client, **{**valid, "execution_id": "nonsense"})).status_code == 404
    assert (await feedback(client, **{**valid, "decision_id": 99999999})).status_code == 404
    mismatch = await feedback(client, **{**valid, "decision_id": other["decision_id"]})
    assert mismatch.status_code == 422 and mismatch.json()["field"] == "execution_id"

    assert (await feedback(client, scope="read", **valid)).status_code == 403
    anonymous = await client.post("/api/v1/autonomous/feedback", json=valid, headers={"Authorization": ""})
    assert anonymous.status_code == 401
    assert (await feedback(client, **valid)).status_code == 201  # the valid body itself is accepted
    denied = await client.get("/api/v1/autonomous/insights", headers=auth("ingest"))
    assert denied.status_code == 403


async def test_the_service_schedules_the_verification_job(
    service: OpsResponder, db_pool: asyncpg.Pool
) -> None:
    async def registered() -> bool:
        names = await db_pool.fetch("SELECT name FROM public.opsresponder_jobs")
        return "verification" in {r["name"] for r in names}

    await eventually(registered, what="the verification job to be registered with the scheduler")
