"""Templates: both spec forms read into one model, every refusal naming its field, the shipped files valid."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from opsresponder.rules.templates import (
    ResponseTemplate,
    TemplateError,
    load_script_catalog,
    read_template,
)

ROOT = Path(__file__).parents[4]
CATALOG = load_script_catalog(ROOT / "config" / "scripts.yaml")
SPEC_YAML = (ROOT / "config" / "templates" / "high_cpu_investigation.yaml").read_text()
SPEC: dict[str, Any] = yaml.safe_load(SPEC_YAML)["response_template"]
API_BODY: dict[str, Any] = {
    "name": "CPU Investigation Playbook",
    "description": "Automated response for high CPU events",
    "trigger_rule_id": 456,
    "response_type": "investigation",
    "actions": [
        {
            "type": "diagnostic",
            "name": "Check Process List",
            "automation_script_id": 123,
            "timeout_minutes": 5,
            "required": True,
        },
        {
            "type": "remediation",
            "name": "Kill High CPU Processes",
            "automation_script_id": 124,
            "approval_required": True,
            "risk_level": "medium",
            "rollback_supported": True,
        },
        {
            "type": "notification",
            "name": "Alert Operations Team",
            "channels": ["email", "slack"],
            "template": "high_cpu_alert",
        },
    ],
    "approval_required": False,
    "max_execution_time_minutes": 30,
}


def read(doc: Any) -> ResponseTemplate:
    return read_template(msgspec.json.encode(doc), "json", CATALOG)


def test_every_shipped_template_is_valid() -> None:
    files = sorted((ROOT / "config" / "templates").glob("*.yaml"))
    assert len(files) >= 3
    for path in files:
        template = read_template(path.read_bytes(), "yaml", CATALOG)
        assert f"{template.id}.yaml" == path.name


def test_the_spec_yaml_form() -> None:
    template = read_template(SPEC_YAML, "yaml", CATALOG)
    assert template.id == "high_cpu_investigation" and template.version == "1.2"
    assert [a.depends_on for a in template.actions] == [
        [],
        ["diagnostic_cpu"],
        ["diagnostic_processes"],
        ["remediation_kill_processes"],
    ]
    assert template.actions[0].automation_script_id == 121  # filled in from the catalog
    assert template.variables[1].default == 3
    assert template.rollback_actions[0].condition == "remediation_kill_processes.failed"


def test_the_spec_api_form_maps_onto_the_same_model() -> None:
    template = read(API_BODY)
    assert template.id == "cpu_investigation_playbook" and template.version == "1"
    assert [a.id for a in template.actions] == [
        "check_process_list",
        "kill_high_cpu_processes",
        "alert_operations_team",
    ]
    # A list without ids or depends_on is an order: each action depends on the one before.
    assert [a.depends_on for a in template.actions] == [
        [],
        ["check_process_list"],
        ["kill_high_cpu_processes"],
    ]
    assert [a.automation_script for a in template.actions] == [
        "list_high_cpu_processes",
        "kill_high_cpu_processes",
        None,
    ]
    assert template.trigger_rule_id == 456 and template.max_execution_time_minutes == 30


def test_json_and_yaml_round_trip() -> None:
    template = read_template(SPEC_YAML, "yaml", CATALOG)
    as_json = msgspec.json.encode(template)
    assert read_template(as_json, "json", CATALOG) == template
    as_yaml = yaml.safe_dump(msgspec.to_builtins(template), sort_keys=False)
    assert read_template(as_yaml, "yaml", CATALOG) == template
    assert read_template(
        yaml.safe_dump({"response_template": msgspec.to_builtins(template)}), "yaml", CATALOG
    ) == (template)


def test_same_names_give_distinct_action_ids() -> None:
    body = copy.deepcopy(API_BODY)
    body["actions"][1]["name"] = "Check Process List"
    body["actions"][1].pop("automation_script_id")
    body["actions"][1]["automation_script"] = "list_high_cpu_processes"
    ids = [a.id for a in read(body).actions]
    assert ids[:2] == ["check_process_list", "check_process_list_2"]


def spec_with(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(SPEC)
    for path, value in changes.items():
        target: Any = doc
        keys = path.split("__")
        for key in keys[:-1]:
            target = target[int(key)] if key.isdigit() else target[key]
        last = keys[-1]
        if value is _DELETE:
            del target[int(last) if last.isdigit() else last]
        elif last.isdigit():
            target[int(last)] = value
        else:
            target[last] = value
    return doc


_DELETE = object()


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"actions__1__depends_on": ["nope"]}, "actions[1].depends_on[0]", "unknown action 'nope'"),
        (
            {"actions__0__depends_on": ["notification_resolved"]},
            "actions[0].depends_on",
            "dependency cycle: diagnostic_cpu -> notification_resolved -> remediation_kill_processes -> "
            "diagnostic_processes -> diagnostic_cpu",
        ),
        (
            {"actions__0__depends_on": ["diagnostic_cpu"]},
            "actions[0].depends_on",
            "cycle: diagnostic_cpu -> diagnostic_cpu",
        ),
        ({"actions__1__id": "diagnostic_cpu"}, "actions[1].id", "duplicate action id 'diagnostic_cpu'"),
        ({"rollback_actions__0__id": "diagnostic_cpu"}, "rollback_actions[0].id", "duplicate action id"),
        ({"actions__1__id": "import"}, "actions[1].id", "reserved word"),
        ({"actions__1__id": "Bad-Id"}, "actions[1].id", "is not an action id"),
        ({"actions__1__id": "any_action_failed"}, "actions[1].id", "execution value"),
        (
            {"actions__2__parameters": {"max_processes": "{{ max_procs }}"}},
            "actions[2].parameters.max_processes",
            "unknown variable 'max_procs'",
        ),
        (
            {"actions__2__parameters": {"max_processes": "{{ not a name }}"}},
            "actions[2].parameters.max_processes",
            "is not a placeholder",
        ),
        (
            {"actions__2__parameters": {"signal": "KILL"}},
            "actions[2].parameters.signal",
            "takes no parameter",
        ),
        ({"variables__1__default": "three"}, "variables[1].default", "'three' is not an integer"),
        ({"variables__1__default": 3.5}, "variables[1].default", "is not an integer"),
        ({"variables__1__default": True}, "variables[1].default", "is not an integer"),
        ({"variables__0__default": "90"}, "variables[0].default", "is not a float"),
        (
            {"variables__1__type": "list", "variables__1__default": [[1]]},
            "variables[1].default",
            "plain values",
        ),
        ({"variables__1__type": "dict"}, "variables[1].type", "Invalid enum value"),
        ({"variables__1__name": "cpu_threshold"}, "variables[1].name", "declared twice"),
        (
            {"actions__0__automation_script": "rm_rf"},
            "actions[0].automation_script",
            "unknown automation script",
        ),
        (
            {"actions__0__automation_script_id": 999},
            "actions[0].automation_script_id",
            "unknown automation script 999",
        ),
        (
            {"actions__0__automation_script_id": 124},
            "actions[0].automation_script_id",
            "script 124 is 'kill_high_cpu_processes', not 'check_cpu_usage'",
        ),
        (
            {"actions__0__automation_script": _DELETE},
            "actions[0].automation_script",
            "runs an automation script",
        ),
        ({"actions__3__channels": []}, "actions[3].channels", "needs at least one channel"),
        (
            {"success_criteria__0": "diagnostic_cpu.result.cpu_usage <"},
            "success_criteria[0]",
            "expected a value",
        ),
        ({"success_criteria__0": "size(diagnostic_cpu.result) > 1"}, "success_criteria[0]", "function calls"),
        (
            {"success_criteria__1": "diagnostic_cpu.result.cpu_usage < {{ cpu_limit }}"},
            "success_criteria[1]",
            "unknown variable 'cpu_limit'",
        ),
        ({"failure_criteria__0": "nope == true"}, "failure_criteria[0]", "unknown name 'nope'"),
        ({"failure_criteria__0": "__import__('os')"}, "failure_criteria[0]", "function calls"),
        ({"failure_criteria__0": "event.metadata.x.y[0] == 1"}, "failure_criteria[0]", "indexing"),
        (
            {"rollback_actions__0__condition": "remediation_kill_processes.failed.x"},
            "rollback_actions[0].condition",
            "has no fields",
        ),
        (
            {"triggers__0__conditions__0": "cpu_usage > 90"},
            "triggers[0].conditions[0]",
            "unknown name 'cpu_usage'",
        ),
        ({"triggers__0__event_type": "Not An Event Type"}, "triggers[0].event_type", "not an event type"),
        ({"id": "Bad Key"}, "id", "not a template key"),
        ({"version": 1.2}, "version", "quote it"),
        ({"actions": []}, "actions", "length >= 1"),
        ({"actions__0__timeout_minutes": 0}, "actions[0].timeout_minutes", ">= 1"),
        ({"actions__0__bogus": 1}, "actions[0].bogus", "unknown field"),
        ({"name": _DELETE}, "name", "required field is missing"),
    ],
)
def test_refusals_name_the_field(changes: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(TemplateError) as caught:
        read(spec_with(**changes))
    assert caught.value.field == field, str(caught.value)
    assert reason in caught.value.reason, str(caught.value)


@pytest.mark.parametrize(
    ("raw", "fmt"),
    [(b"{not json", "json"), (b"a: [1, 2", "yaml"), (b"a: &x [1]\nb: *x\n", "yaml"), (b"\xff\xfe", "json")],
)
def test_malformed_bodies(raw: bytes, fmt: Any) -> None:
    with pytest.raises(TemplateError) as caught:
        read_template(raw, fmt, CATALOG)
    assert caught.value.malformed


def test_a_yaml_bomb_is_refused_without_expanding() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 12)]
    with pytest.raises(TemplateError, match="anchors and aliases"):
        read_template("\n".join(lines), "yaml", CATALOG)


def test_not_an_object() -> None:
    with pytest.raises(TemplateError) as caught:
        read_template(b"[1, 2]", "json", CATALOG)
    assert not caught.value.malformed and "object" in caught.value.reason


def test_an_integer_variable_may_fill_a_float_parameter() -> None:
    doc = spec_with(
        actions__2__parameters={"min_cpu_percent": "{{ max_processes_to_kill }}", "max_processes": 2}
    )
    assert read(doc).actions[2].parameters == {
        "min_cpu_percent": "{{ max_processes_to_kill }}",
        "max_processes": 2,
    }
