"""Message templates: the shipped ones render, the sandbox refuses Python internals, failures fall back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opsresponder.core.errors import ConfigError
from opsresponder.response.notify.messages import (
    MAX_SUBJECT_CHARS,
    MessageTemplate,
    RenderedMessage,
    TemplateSpec,
    load_message_templates,
)

SHIPPED = Path(__file__).parents[4] / "config" / "notifications"


def realistic_context() -> dict[str, Any]:
    """What the executor passes (docs/response.md "Notifications"), with every optional part present."""
    actions = [
        {"name": "CPU Diagnostic", "status": "completed", "error": None},
        {"name": "Kill High CPU Processes", "status": "failed", "error": "exit code 3"},
    ]
    return {
        "event": {
            "id": 4711,
            "title": "CPU usage above 95% for 5 minutes",
            "host": "web-01",
            "severity": "high",
            "service": "nginx",
            "metadata": {"cpu_usage": 97.5, "disk_used_percent": 91},
        },
        "execution": {
            "id": "exec_3f2a",
            "status": "failed",
            "decision_id": 67890,
            "event_id": 4711,
            "actions": actions,
            "started_at": "2026-12-05T06:00:00Z",
            "completed_at": "2026-12-05T06:01:30Z",
        },
        "action": actions[1],
        "variables": {"cpu_threshold": 90.0, "mount_point": "/var", "service_name": "nginx"},
        "results": {
            "diagnostic_cpu": {"status": "completed", "data": {"cpu_usage": 41.5}},
            "measure_before": {"data": {"used_percent": 91}},
            "measure_after": {"data": {"used_percent": 62}},
            "verify_health": {"data": {"status_code": 503}},
        },
        "risk_level": "medium",
        "actions": [{"name": "Kill High CPU Processes", "risk_level": "medium"}],
        "approvers": ["alice", "bob"],
        "link": "https://ops.example.com/approvals/12?token=a&b",
        "expires_at": "2026-12-05T06:30:00Z",
    }


def template(subject: str, body: str = "", **fields: Any) -> MessageTemplate:
    return MessageTemplate("probe", "test", TemplateSpec(subject=subject, body=body, **fields))


def render(text: str, **context: Any) -> RenderedMessage:
    return template("s", text).render(context)


def test_the_spec_and_executor_templates_are_shipped() -> None:
    shipped = set(load_message_templates(SHIPPED))
    assert {
        "high_cpu_alert",
        "cpu_issue_resolved",
        "execution_started",
        "execution_completed",
        "execution_failed",
        "approval_requested",
        "approval_expired",
        "automation_loop_detected",
    } <= shipped
    # The shipped response templates name these; a missing one would fail their notification actions.
    assert {"disk_cleanup_report", "service_restart_failed"} <= shipped


@pytest.mark.parametrize("name", sorted(load_message_templates(SHIPPED)))
def test_every_shipped_template_renders_a_realistic_context(name: str) -> None:
    loaded = load_message_templates(SHIPPED).get(name)
    assert loaded is not None
    message = loaded.render(realistic_context())
    assert message.render_error is None
    assert message.subject and "\n" not in message.subject
    assert "web-01" in message.subject + message.body
    assert message.slack.strip()
    assert "None" not in message.body + message.slack  # a null value prints empty, not "None"
    if name.startswith(("execution_", "approval_")):
        assert "exec_3f2a" in message.subject


@pytest.mark.parametrize("name", sorted(load_message_templates(SHIPPED)))
def test_every_shipped_template_renders_an_empty_context(name: str) -> None:
    loaded = load_message_templates(SHIPPED).get(name)
    assert loaded is not None
    assert loaded.render({}).render_error is None


def test_the_shipped_texts_carry_the_facts() -> None:
    templates = load_message_templates(SHIPPED)
    context = realistic_context()
    failed = templates.get("execution_failed")
    assert failed is not None
    message = failed.render(context)
    assert "Failed action: Kill High CPU Processes: exit code 3" in message.body
    assert "CPU Diagnostic: completed" in message.body
    approval = templates.get("approval_requested")
    assert approval is not None
    message = approval.render(context)
    assert "Approvers: alice, bob" in message.body
    assert "https://ops.example.com/approvals/12?token=a&b" in message.body  # text: not escaped
    assert "<https://ops.example.com/approvals/12?token=a&amp;b|Approve or reject>" in message.slack
    alert = templates.get("high_cpu_alert")
    assert alert is not None
    assert "CPU usage: 41.5%" in alert.render(context).body


def test_missing_values_render_empty_at_any_depth_and_default_names_a_stand_in() -> None:
    message = render(
        "[{{ event.host }}][{{ event.metadata.cpu.now }}][{{ n }}][{{ x | default('?') }}]", n=None
    )
    assert message.render_error is None
    assert message.body == "[][][][?]\n"


def test_context_values_are_data_never_template_code() -> None:
    message = render("{{ event.title }}", event={"title": "{{ 7 * 7 }} {% raw %}"})
    assert message.body == "{{ 7 * 7 }} {% raw %}\n"


@pytest.mark.parametrize(
    "probe",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ event.__class__.__init__.__globals__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ lipsum.__globals__ }}",
        "{{ event.__dict__ }}",
    ],
)
def test_the_sandbox_makes_python_internals_inert(probe: str) -> None:
    message = render(f"[{probe}]", event={"title": "t"})
    assert message.render_error is None
    assert message.body == "[]\n"


@pytest.mark.parametrize(
    ("probe", "why"),
    [
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "unsafe"),
        ("{{ ''.__class__.__base__.__subclasses__()[0] }}", "unsafe"),
        ("{{ items.append(1) }}", "unsafe"),
        ("{{ event.update({'title': 'x'}) }}", "unsafe"),
        ("{{ range(10 ** 9) | list }}", "Range too big"),
        ("{{ 'x' * 10 ** 8 }}", "repeated value"),
        ("{{ [1] * 10 ** 8 }}", "repeated value"),
        ("{{ 7 ** 1000000 }}", "exponent"),
    ],
)
def test_the_sandbox_refuses_and_the_message_falls_back(probe: str, why: str) -> None:
    message = render(probe, items=[], event={"title": "t"})
    assert message.render_error is not None and why in message.render_error
    assert "probe" in message.subject and "failed to render" in message.subject
    assert why in message.body


def test_a_render_error_falls_back_to_a_plain_message_naming_it_and_the_context() -> None:
    t = template("Disk {{ event.host }}", "{{ 1 / event.zero }}")
    message = t.render({"event": {"host": "db-2", "zero": 0}})
    assert message.render_error is not None
    assert message.render_error.startswith("ZeroDivisionError")
    assert message.subject == "OpsResponder notification probe (its template failed to render)"
    assert "ZeroDivisionError" in message.body
    assert '"host":"db-2"' in message.body  # the context, so the people notified still learn what happened
    assert message.format == "text"


def test_the_subject_is_one_bounded_line() -> None:
    message = template("a\r\nBcc: victim@example.com\n{{ long }}").render({"long": "x" * 1000})
    assert "\n" not in message.subject and "\r" not in message.subject
    assert message.subject.startswith("a Bcc: victim@example.com x")
    assert len(message.subject) == MAX_SUBJECT_CHARS


def test_an_html_body_escapes_values() -> None:
    t = template("s", "<p>{{ event.title }}</p>", format="html")
    message = t.render({"event": {"title": "<script>alert(1)</script> & co"}})
    assert message.body == "<p>&lt;script&gt;alert(1)&lt;/script&gt; &amp; co</p>\n"
    assert message.format == "html"
    assert "&lt;script&gt;" in message.slack and "<p>" not in message.slack


def test_slack_text_escapes_values_but_keeps_the_templates_markup() -> None:
    t = template("s", "b", slack="<{{ link }}|open> {{ event.title }}")
    message = t.render({"link": "https://x.example/a?b=1&c=2", "event": {"title": "<!channel> & <@U123>"}})
    assert message.slack == "<https://x.example/a?b=1&amp;c=2|open> &lt;!channel&gt; &amp; &lt;@U123&gt;"


def test_default_slack_text_is_the_bold_subject_and_the_escaped_body() -> None:
    message = template("Disk {{ h }}", "used {{ p }}% <ok>").render({"h": "db-1", "p": 93})
    assert message.slack == "*Disk db-1*\nused 93% &lt;ok&gt;"


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("subject: [unclosed\n", "not valid YAML"),
        ("subject: s\nbody: b\ncolour: red\n", "colour"),
        ("subject: s\n", "body"),
        ("- a list\n", "a mapping"),
        ("subject: '{{ event.title '\nbody: b\n", "subject: line 1"),
        ("subject: s\nbody: '{% for x in y %}'\n", "body"),
        ("subject: s\nbody: b\nformat: markdown\n", "format"),
    ],
)
def test_a_bad_file_is_a_config_error_naming_the_file(tmp_path: Path, text: str, said: str) -> None:
    write(tmp_path, "good.yaml", "subject: s\nbody: b\n")
    bad = write(tmp_path, "broken.yaml", text)
    with pytest.raises(ConfigError) as raised:
        load_message_templates(tmp_path)
    assert str(bad) in str(raised.value)
    assert said in str(raised.value)


def test_names_and_duplicates_are_checked(tmp_path: Path) -> None:
    write(tmp_path, "Bad-Name.yaml", "subject: s\nbody: b\n")
    with pytest.raises(ConfigError, match="Bad-Name"):
        load_message_templates(tmp_path)
    (tmp_path / "Bad-Name.yaml").unlink()
    write(tmp_path, "twice.yaml", "subject: s\nbody: b\n")
    write(tmp_path, "twice.yml", "subject: s\nbody: b\n")
    with pytest.raises(ConfigError, match="already defines the template 'twice'"):
        load_message_templates(tmp_path)


def test_no_directory_means_no_templates(tmp_path: Path) -> None:
    assert len(load_message_templates(None)) == 0
    missing = load_message_templates(tmp_path / "absent")
    assert len(missing) == 0 and missing.names() == "none"
