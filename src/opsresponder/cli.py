"""``opsresponder serve | migrate | check-config`` (also ``python -m opsresponder``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import structlog

from opsresponder.app import OpsResponder, database_session, validate
from opsresponder.config import Settings, load_settings
from opsresponder.core.errors import OpsResponderError
from opsresponder.gc_tuning import tune_for_service
from opsresponder.logs import configure_logging
from opsresponder.store.migrations import migrate
from opsresponder.store.pool import connection

DEFAULT_CONFIG = Path("config/opsresponder.yaml")

log = structlog.get_logger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="opsresponder", description=__doc__)
    parser.add_argument(
        "--config",
        help=f"configuration file (default: $OPSRESPONDER_CONFIG, else {DEFAULT_CONFIG} when it exists)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the service")
    commands.add_parser("migrate", help="apply database migrations and exit")
    commands.add_parser("check-config", help="validate the configuration and exit (1 when invalid)")
    args = parser.parse_args(argv)

    try:
        settings = load_settings(_config_path(args.config))
        validate(settings)
    except OpsResponderError as e:
        print(f"opsresponder: {e}", file=sys.stderr)
        return 1
    if args.command == "check-config":
        print("configuration is valid")
        return 0

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


async def _tune_once_started(service: OpsResponder) -> None:
    await service.started.wait()
    tune_for_service()


def _config_path(explicit: str | None) -> Path | None:
    chosen = explicit or os.environ.get("OPSRESPONDER_CONFIG")
    if chosen:
        return Path(chosen)  # named explicitly: a missing file is an error
    return DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None


def _serve(settings: Settings) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported platform
        asyncio.run(_run(settings))
    else:
        uvloop.run(_run(settings))


async def _run(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    service = OpsResponder(settings)
    tuning = asyncio.create_task(_tune_once_started(service), name="gc-tuning")
    try:
        await service.run(stop)
    finally:
        tuning.cancel()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(sig)


async def _migrate(settings: Settings) -> None:
    async with database_session(settings) as pool, connection(pool) as conn:
        applied = await migrate(conn)
    print(f"applied migrations: {applied or 'none (up to date)'}")
