"""Settings: YAML plus OPSRESPONDER_* overrides; every bad key or value is refused naming its path."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsresponder.config import RetentionConfig, ScoringConfig, load_settings, settings_from_tree
from opsresponder.core.errors import ConfigError

REPO = Path(__file__).parents[2]


def test_the_shipped_config_is_valid_and_has_the_spec_defaults() -> None:
    settings = load_settings(REPO / "config" / "opsresponder.yaml", environ={})
    assert settings.api.events.port == 3009
    assert settings.api.autonomous.port == 3011
    assert (settings.syslog.udp.port, settings.syslog.tcp.port, settings.syslog.tls.port) == (514, 514, 6514)
    assert settings.snmp.port == 162
    assert settings.snmp.communities == ["public", "monitoring"]
    assert settings.snmp.trap_mapping["linkDown"].event_type == "connectivity_issue"
    assert [r.event_type for r in settings.syslog.parsing_rules] == [
        "authentication_failure",
        "disk_space_critical",
    ]
    assert settings.database.url is None and settings.redis.url is None
    assert settings.pipeline.dedup_window_seconds == 300
    assert settings.pipeline.stages == [
        "normalize",
        "enrich",
        "noise",
        "patterns",
        "correlate",
        "score",
        "rules",
    ]
    assert settings.pipeline.trace is True
    assert settings.scoring == ScoringConfig()  # the file states the defaults of config.py
    assert settings.retention == RetentionConfig()
    assert settings.rules.min_severity == "low" and settings.rules.file is None
    assert settings.noise.silence_refresh_seconds == 2
    assert settings.noise.flapping.max_changes == 5 and settings.noise.flapping.window_minutes == 30
    assert settings.templates.directory == "config/templates"
    assert settings.templates.scripts_file == "config/scripts.yaml"


def test_environment_overrides_nested_keys_with_scalars_and_json() -> None:
    settings = load_settings(
        None,
        environ={
            "OPSRESPONDER_SYSLOG__UDP__PORT": "5514",
            "OPSRESPONDER_SYSLOG__TLS__ENABLED": "false",
            "OPSRESPONDER_DATABASE__URL": "postgresql://db/x",
            "OPSRESPONDER_API__TOKENS": '[{"name":"ops","token":"0123456789abcdef","scopes":["admin"]}]',
            "OPSRESPONDER_SNMP__COMMUNITIES": '["c1"]',
            "OPSRESPONDER_REDIS__URL": "null",
            # The tooling's own variables share the prefix and are not settings.
            "OPSRESPONDER_TEST_DATABASE_URL": "postgresql://elsewhere/test",
            "OPSRESPONDER_REQUIRE_SERVICES": "1",
            "OPSRESPONDER_CONFIG": "/etc/opsresponder.yaml",
            "UNRELATED": "x",
        },
    )
    assert settings.syslog.udp.port == 5514
    assert settings.database.url == "postgresql://db/x"
    assert settings.api.tokens[0].name == "ops" and settings.api.tokens[0].scopes == ["admin"]
    assert settings.snmp.communities == ["c1"]
    assert settings.redis.url is None


def test_environment_beats_the_file(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("syslog:\n  udp: {port: 1514}\n")
    assert load_settings(f, environ={}).syslog.udp.port == 1514
    assert load_settings(f, environ={"OPSRESPONDER_SYSLOG__UDP__PORT": "2514"}).syslog.udp.port == 2514


@pytest.mark.parametrize(
    ("tree", "path"),
    [
        ({"syslog": {"udp": {"port": "x"}}}, "syslog.udp.port"),
        ({"syslog": {"udp": {"port": 70000}}}, "syslog.udp.port"),
        ({"syslog": {"udpp": {}}}, "udpp"),
        ({"api": {"tokens": [{"name": "a", "token": "short", "scopes": ["admin"]}]}}, "api.tokens[0].token"),
        (
            {"api": {"tokens": [{"name": "a", "token": "0123456789abcdef", "scopes": ["root"]}]}},
            "api.tokens[0].scopes[0]",
        ),
        ({"pipeline": {"batch_max_events": 0}}, "pipeline.batch_max_events"),
        (
            {"snmp": {"trap_mapping": {"linkDown": {"event_type": "x", "severity": "urgent"}}}},
            "snmp.trap_mapping",
        ),
        ({"logging": {"level": "loud"}}, "logging.level"),
        ({"patterns": {"similarity_threshold": 1.5}}, "patterns.similarity_threshold"),
        ({"patterns": {"similarity_threshold": 0}}, "patterns.similarity_threshold"),
        ({"patterns": {"depth": 2}}, "patterns.depth"),
        ({"patterns": {"max_templates": 0}}, "patterns.max_templates"),
    ],
)
def test_bad_values_name_their_key_path(tree: dict[str, object], path: str) -> None:
    with pytest.raises(ConfigError, match=path.replace("[", r"\[").replace("]", r"\]")):
        settings_from_tree(tree)


def test_rules_across_keys() -> None:
    token = {"token": "0123456789abcdef", "scopes": ["read"]}
    with pytest.raises(ConfigError, match="duplicate token name"):
        settings_from_tree({"api": {"tokens": [{"name": "a", **token}, {"name": "a", **token}]}})
    with pytest.raises(ConfigError, match="may not begin with 'role:'"):
        settings_from_tree({"api": {"tokens": [{"name": "role:dba", **token}]}})
    with pytest.raises(ConfigError, match="the name 'rules' is reserved"):
        settings_from_tree({"api": {"tokens": [{"name": "rules", **token}]}})
    with pytest.raises(ConfigError, match=r"syslog\.tls\.enabled needs"):
        settings_from_tree({"syslog": {"tls": {"enabled": True}}})


def test_file_errors_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.yaml", environ={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad, environ={})
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_settings(listy, environ={})
    with pytest.raises(ConfigError, match="invalid JSON"):
        load_settings(None, environ={"OPSRESPONDER_API__TOKENS": "[oops"})
