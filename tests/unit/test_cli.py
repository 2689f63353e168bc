"""The command line: --config on either side of the subcommand, readable help, the container health check."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsresponder.cli import main

CONFIG = str(Path(__file__).parents[2] / "config" / "opsresponder.yaml")


@pytest.mark.parametrize(
    "argv",
    [
        ["--config", CONFIG, "check-config"],
        ["check-config", "--config", CONFIG],
    ],
)
def test_config_is_accepted_before_and_after_the_subcommand(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == "configuration is valid"


def test_the_config_after_the_subcommand_wins(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("syslog:\n  udp:\n    port: not-a-port\n")
    assert main(["--config", CONFIG, "check-config", "--config", str(bad)]) == 1
    assert "syslog.udp.port" in capsys.readouterr().err


def test_check_config_refuses_an_unknown_stage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("pipeline:\n  stages: [normalize, enrichment, correlate]\n")
    assert main(["check-config", "--config", str(bad)]) == 1
    assert "pipeline.stages: unknown stage 'enrichment'" in capsys.readouterr().err


def test_check_config_refuses_an_asset_inventory_that_does_not_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assets = tmp_path / "assets.yaml"
    assets.write_text("assets: {db-1: {criticality: urgent}}\n")
    config = tmp_path / "config.yaml"
    config.write_text(f"enrichment:\n  assets_file: {assets}\n")
    assert main(["check-config", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "enrichment.assets_file: assets['db-1']: criticality: Invalid enum value 'urgent'" in err
    # A missing file is not an error: it may be written later, and is picked up when it is.
    config.write_text(f"enrichment:\n  assets_file: {tmp_path / 'later.yaml'}\n")
    assert main(["check-config", "--config", str(config)]) == 0


def test_check_config_refuses_an_asset_service_url_that_is_not_http(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("enrichment:\n  asset_service:\n    url: ftp://cmdb/assets\n")
    assert main(["check-config", "--config", str(config)]) == 1
    assert "enrichment.asset_service.url: the scheme must be http or https" in capsys.readouterr().err


def test_check_config_refuses_a_bad_rules_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {id: 1, conditions: {host: {$regex: '(unclosed'}}}\n")
    config = tmp_path / "config.yaml"
    config.write_text(f"rules:\n  file: {rules}\n")
    assert main(["check-config", "--config", str(config)]) == 1
    assert "rules.file: " in capsys.readouterr().err


@pytest.mark.parametrize("command", ["serve", "migrate", "check-config", "healthcheck"])
def test_every_subcommand_shows_config_in_its_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert "--config FILE" in capsys.readouterr().out


def test_top_level_help_is_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "``" not in out
    for command in ("serve", "migrate", "check-config", "healthcheck"):
        assert command in out


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("status", "code"), [(200, 0), (503, 1)])
def test_healthcheck_asks_the_configured_events_port(
    health_server: http.server.HTTPServer,
    status: int,
    code: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_Health, "status", status)
    monkeypatch.setenv("OPSRESPONDER_API__EVENTS__PORT", str(health_server.server_address[1]))
    assert main(["healthcheck", "--config", CONFIG]) == code


def test_healthcheck_fails_when_nothing_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    with http.server.HTTPServer(("127.0.0.1", 0), _Health) as closed:
        port = closed.server_address[1]
    monkeypatch.setenv("OPSRESPONDER_API__EVENTS__PORT", str(port))
    assert main(["healthcheck", "--config", CONFIG]) == 1


def test_a_command_runs_with_its_standard_streams_closed() -> None:
    # Nothing reads or writes stdin/stdout at import (the response process's link opens its descriptors
    # only when it runs): a closed stream is no crash.
    config = Path(__file__).parents[2] / "config" / "opsresponder.yaml"
    command = f'"{sys.executable}" -m opsresponder --config "{config}" check-config <&- >&-'
    assert subprocess.run(["/bin/sh", "-c", command], check=False, timeout=60).returncode == 0
