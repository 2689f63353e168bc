"""The ``opsresponder`` command: serve, migrate, check-config, healthcheck (or ``python -m opsresponder``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import signal
import sys
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import structlog

from opsresponder.app import OpsResponder, database_session, serving_role
from opsresponder.assembly import validate
from opsresponder.config import Settings, load_settings
from opsresponder.core.errors import OpsResponderError
from opsresponder.gc_tuning import tune_for_service
from opsresponder.logs import configure_logging
from opsresponder.response_process import COMMAND as RESPONSE_PROCESS
from opsresponder.response_process import ParentLink
from opsresponder.store.migrations import migrate
from opsresponder.store.pool import connection

DEFAULT_CONFIG = Path("config/opsresponder.yaml")

log = structlog.get_logger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == RESPONSE_PROCESS:
        return _response_process(args.parent_pid)

    try:
        settings = load_settings(_config_path(getattr(args, "config", None)))
        validate(settings)
    except OpsResponderError as e:
        print(f"opsresponder: {e}", file=sys.stderr)
        return 1
    if args.command == "check-config":
        print("configuration is valid")
        return 0
    if args.command == "healthcheck":
        return _healthcheck(settings)

    configure_logging(settings.logging.level, settings.logging.format)
    try:
        if args.command == "migrate":
            asyncio.run(_migrate(settings))
        else:
            _serve(settings)
    except OpsResponderError as e:
        log.error("OpsResponder could not start.", error=str(e))
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    # --config is accepted before the subcommand and after it; SUPPRESS keeps a value given before the
    # subcommand from being reset by the subparser's default.
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument(
        "--config",
        default=argparse.SUPPRESS,
        metavar="FILE",
        help=f"configuration file (default: $OPSRESPONDER_CONFIG, else {DEFAULT_CONFIG} when it exists)",
    )
    parser = argparse.ArgumentParser(
        prog="opsresponder",
        description="Event processing and automated response: webhooks, syslog and SNMP traps in, "
        "correlated events and guarded playbooks out.",
        epilog="Every configuration key can also be set as OPSRESPONDER_<KEY__PATH>, "
        "e.g. OPSRESPONDER_SYSLOG__UDP__PORT=5514.",
        parents=[config],
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in (
        ("serve", "run the service"),
        ("migrate", "apply database migrations and exit"),
        ("check-config", "validate the configuration and exit (1 when invalid)"),
        ("healthcheck", "ask the running service's events API for /health (exit 0 when healthy)"),
    ):
        commands.add_parser(name, help=text, description=text[:1].upper() + text[1:] + ".", parents=[config])
    # Started by `serve` only (response.process: separate), with the configuration on its input: not listed.
    child = commands.add_parser(RESPONSE_PROCESS)
    child.add_argument("--parent-pid", type=int, required=True)
    return parser


def _healthcheck(settings: Settings, timeout: float = 4.0) -> int:
    """One GET of ``/health`` on the configured events API port, for container health checks."""
    listen = settings.api.events
    host = "127.0.0.1" if listen.host in {"0.0.0.0", "", "::"} else listen.host  # noqa: S104
    if ":" in host:
        host = f"[{host}]"
    url = f"http://{host}:{listen.port}/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            healthy = answer.status == 200
    except (OSError, ValueError) as e:
        print(f"opsresponder: {url}: {e}", file=sys.stderr)
        return 1
    print(f"{url}: {'healthy' if healthy else 'unhealthy'}")
    return 0 if healthy else 1


async def _tune_once_started(service: OpsResponder) -> None:
    await service.started.wait()
    tune_for_service()


def _config_path(explicit: str | None) -> Path | None:
    chosen = explicit or os.environ.get("OPSRESPONDER_CONFIG")
    if chosen:
        return Path(chosen)  # named explicitly: a missing file is an error
    return DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None


def _serve(settings: Settings, link: ParentLink | None = None) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported platform
        asyncio.run(_run(settings, link))
    else:
        uvloop.run(_run(settings, link))


def _response_process(parent_pid: int) -> int:
    """The response side's child process (opsresponder.response_process describes the protocol)."""
    link = ParentLink(parent_pid)
    try:
        link.die_with_parent()
        settings = link.read_settings()
    except OpsResponderError as e:
        print(f"opsresponder: {e}", file=sys.stderr)
        return 1
    configure_logging(settings.logging.level, settings.logging.format)
    # Raising niceness needs no privilege; never lower it below what the parent was started with.
    nice = max(settings.response.process_nice, os.getpriority(os.PRIO_PROCESS, 0))
    os.setpriority(os.PRIO_PROCESS, 0, nice)
    try:
        _serve(settings, link)
    except OpsResponderError as e:
        log.error("The response process could not start.", error=str(e))
        return 1
    return 0


async def _run(settings: Settings, link: ParentLink | None = None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if link is None:
        service = OpsResponder(settings, role=serving_role(settings))
    else:
        service = OpsResponder(settings, role="response", announce=link.announce)

    def stop_now() -> None:
        stop.set()
        # At once, not when `run` next looks: a signal to the whole process group (systemd's) may end the
        # response process before that, and must not be taken for a crash.
        if service.response_process is not None:
            service.response_process.prepare_stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_now)
    # SIGHUP rereads the asset inventory (docs/assets.md), the usual "reload your files" signal.
    loop.add_signal_handler(signal.SIGHUP, service.reload)
    tuning = asyncio.create_task(_tune_once_started(service), name="gc-tuning")
    parent = None
    if link is not None:
        # The end of the parent's pipe is the parent gone: stop as on SIGTERM.
        parent = asyncio.create_task(link.follow(service.wake_response_loop), name="parent-link")
        parent.add_done_callback(functools.partial(_parent_gone, stop))
    try:
        await service.run(stop)
    finally:
        tuning.cancel()
        if parent is not None:
            parent.cancel()
            # Stopped already: a SIGTERM from the parent arriving from now on must not make the exit
            # code -15. Blocked while the loop's handler gives way to the ignore (removing a handler
            # restores the default action).
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(signal.SIGTERM)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(sig)


def _parent_gone(stop: asyncio.Event, task: asyncio.Task[None]) -> None:
    """The end of the parent's pipe is the parent gone: stop as on SIGTERM (saying why, if it failed)."""
    if not task.cancelled() and task.exception() is not None:
        log.error("Reading the parent's pipe failed; stopping.", exc_info=task.exception())
    stop.set()


async def _migrate(settings: Settings) -> None:
    async with database_session(settings) as pool, connection(pool) as conn:
        applied = await migrate(conn)
    print(f"applied migrations: {applied or 'none (up to date)'}")
