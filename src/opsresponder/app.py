"""Running the service: the second half of the composition root (`assembly` builds the parts).

`OpsResponder.run` opens the database, starts the state backend, builds the parts, starts them, serves
until told to stop, then stops them in `STOP_ORDER`. ``ingest``, ``pipeline``, ``live``, ``outbound`` and
``response`` never import each other; they meet in `assembly`.

Roles: with ``response.process: separate`` (the default) `serve` runs the role ``events`` (ingest, the
pipeline, port 3009, the stream, deliveries, retention) and starts the role ``response`` (port 3011, the
executor, the rule-to-response loop, their periodic jobs) as its child process (`response_process`);
``all`` runs both in this process (``inline``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Final, Literal

import asyncpg
import msgspec
import structlog

from opsresponder.api.server import HttpServer
from opsresponder.assembly import Parts, ResponseParts, build_parts, build_response_parts
from opsresponder.config import Settings, TokenConfig
from opsresponder.core.clock import Clock, utcnow
from opsresponder.pipeline.intake import Intake
from opsresponder.pipeline.stage import BackgroundStage
from opsresponder.pipeline.worker import PipelineWorker
from opsresponder.response.executor.service import ExecutionService
from opsresponder.response.loop import ResponseLoop
from opsresponder.response_process import ResponseProcess
from opsresponder.state import StateBackend, build_state_backend
from opsresponder.store.embedded import EmbeddedPostgres, ensure_database
from opsresponder.store.migrations import migrate
from opsresponder.store.pool import connection, create_pool

log = structlog.get_logger(__name__)

BOOTSTRAP_TOKEN_FILE = "admin-token"  # noqa: S105 - a file name, not a secret

# The one shutdown order, and why:
# - scheduler: periodic jobs need no drain; a retention batch in flight rolls back by itself and the
#   job's lease is released, so another replica or the next start picks it up;
# - ingest, stream, http: stop taking new work: the syslog and SNMP listeners first; then end the live
#   streams, which never end by themselves and would hold uvicorn's graceful wait; then the HTTP servers,
#   which finish their in-flight requests (those need the worker, still running);
# - executions: once no request can submit, cancel or roll back any more (after http), and while the pool
#   is open (its states are written): the execution service stops claiming, cancels the actions running
#   here (their process groups are killed, as on a cancel) and marks those executions `interrupted`, so
#   no restart takes them for still running; the rollback they asked for (rollback_on_failure) runs at
#   the next start of any replica. Queued executions stay queued for the next start or another replica.
#   The rule-to-response loop stops first (it submits executions); a firing it had claimed but not settled
#   is claimed again once its lease expires.
#   A kill -9 skips all this: the next start finds the dead owner's lease expired and does the same;
# - intake, worker: drain what is queued within the grace period, then stop the worker;
# - stages: the stages' own background work (the asset inventory watcher, asset service lookups), once no
#   batch runs any more;
# - publisher: publish the last commits, since other replicas' stream clients are still listening;
# - deliveries: after the worker (no more commits), before the pool closes; a delivery cut short rolls
#   back, so its rows stay pending for the next start or another replica;
# - response_clients: the HTTP clients of the notification channels and the HTTP runner, once no
#   execution can use them any more;
# - sockets: release HTTP sockets of servers that never served (a no-op after uvicorn closed them).
# The state backend, the pool and the embedded PostgreSQL close after all of these, in `run`.
STOP_ORDER: Final = ("scheduler", "ingest", "stream", "http", "executions", "intake", "worker", "stages",
                     "publisher", "deliveries", "response_clients", "sockets")  # fmt: skip

StopStep = Callable[[], Awaitable[None]]
Role = Literal["all", "events", "response"]


class Shutdown:
    """The stops of the parts that started, run once each in `STOP_ORDER`, whatever failed before.

    A part registers its stop when it has started, so a start that fails half-way stops exactly what it
    started, in the same order as a normal shutdown. A stop that raises is logged and the next one runs.
    """

    def __init__(self, order: tuple[str, ...] = STOP_ORDER) -> None:
        self._order = order
        self._steps: dict[str, list[StopStep]] = {}

    def on_stop(self, part: str, step: StopStep) -> None:
        if part not in self._order:
            raise ValueError(f"{part!r} is not in the stop order {self._order}")
        self._steps.setdefault(part, []).append(step)

    async def run(self) -> None:
        for part in self._order:
            for step in self._steps.pop(part, []):
                try:
                    await step()
                except Exception:
                    log.exception("Stopping a part failed; stopping the others.", part=part)


def serving_role(settings: Settings) -> Role:
    """What `serve` runs in its own process: ``events`` when the response side has a process of its own
    (``response.process: separate``), else ``all``."""
    separate = settings.response.enabled and settings.response.process == "separate"
    return "events" if separate else "all"


class OpsResponder:
    """The whole service. `run` starts everything, serves until `stop` is set, then shuts down in
    `STOP_ORDER`."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = utcnow,
        role: Role = "all",
        announce: Callable[[dict[str, str]], None] | None = None,
    ) -> None:
        """`role`: ``all`` runs everything here (embedding, tests: `running`); `serve` passes
        `serving_role`; ``response`` is the child process's. `announce`: told the listeners' addresses once
        this process serves (the child tells its parent)."""
        self.settings = _with_bootstrap_token(settings)
        self._clock = clock
        self.role = role
        self._announce = announce
        self.response_process: ResponseProcess | None = None
        self._response_parts: ResponseParts | None = None
        self.started = asyncio.Event()
        self.listeners: dict[str, str] = {}
        self.intake: Intake | None = None
        self.worker: PipelineWorker | None = None
        self.state: StateBackend | None = None
        self.pool: asyncpg.Pool | None = None
        self._reloadable: list[BackgroundStage] = []

    def reload(self) -> None:
        """Reread what can be reread without a restart (the asset inventory); cli calls it on SIGHUP."""
        log.info("Reloading on request.", stages=[getattr(s, "name", "?") for s in self._reloadable])
        for stage in self._reloadable:
            stage.reload()

    def wake_response_loop(self) -> None:
        """The rule-to-response loop looks for firings now (the response process, woken by its parent)."""
        parts = self._response_parts
        if parts is not None and parts.loop is not None:
            parts.loop.on_commit([])

    async def run(self, stop: asyncio.Event) -> None:
        settings = self.settings
        response_here = self.role != "events" and settings.response.enabled
        async with database_pools(settings, response=response_here) as (pool, response_pool, dsn):
            self.pool = pool
            if self.role != "response":  # the child's parent has migrated
                async with connection(pool) as conn:
                    await migrate(conn)
            # Started before anything serves, so an unreachable Redis fails the start, not a request.
            state = build_state_backend(settings.redis.url, settings.redis.key_prefix)
            await state.start()
            self.state = state
            try:
                if self.role == "response":
                    self._response_parts = build_response_parts(
                        settings, pool, state, self.listeners, self._clock, response_pool=response_pool
                    )
                    await self._serve_response(self._response_parts, stop)
                else:
                    parts = build_parts(
                        settings,
                        pool,
                        state,
                        self.listeners,
                        self._clock,
                        response_pool=response_pool,
                        response_here=self.role == "all",
                    )
                    if self.role == "events" and settings.response.enabled:
                        # The child uses the database this process uses (an embedded one included).
                        database = msgspec.structs.replace(settings.database, url=dsn)
                        self.response_process = ResponseProcess(
                            msgspec.structs.replace(settings, database=database),
                            parts.registry,
                            self.listeners,
                        )
                    await self._serve(parts, stop)
            finally:
                await state.stop()
        log.info("OpsResponder stopped." if self.role != "response" else "The response process stopped.")

    async def _serve(self, parts: Parts, stop: asyncio.Event) -> None:
        self.intake, self.worker = parts.intake, parts.worker
        grace = self.settings.pipeline.drain_grace_seconds
        shutdown = _shutdown_closing(parts.servers, parts.response_clients)
        try:
            log.info("Response templates loaded from files.", **await parts.load_templates())
            if self.response_process is not None:
                # After the migrations and the templates, like the executor in one process; before the
                # listening line, which names port 3011's address too.
                child = self.response_process
                # SIGTERM at `http`, so it drains its requests while this process drains its own; its
                # end is awaited at `executions`.
                shutdown.on_stop("http", child.begin_stop)
                shutdown.on_stop("executions", child.stop)
                await child.start()
                parts.worker.add_commit_listener(lambda _events: child.wake())
                if parts.events_context is not None:
                    parts.events_context.response_process = child.state
            if parts.executions is not None:
                # After the migrations and the templates.
                await _start_executions(shutdown, parts.executions, parts.loop)
            for name, listener in parts.ingest_listeners.items():
                await listener.start()
                shutdown.on_stop("ingest", listener.stop)
                host, port = listener.address
                self.listeners[name] = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            log.info("OpsResponder is listening.", **self.listeners)
            if parts.delivery is not None:
                await parts.delivery.start()
                shutdown.on_stop("deliveries", _call(parts.delivery.stop, grace))
            await parts.publisher.start()
            shutdown.on_stop("publisher", parts.publisher.stop)
            await parts.hub.start()
            shutdown.on_stop("stream", parts.hub.close)
            for stage in parts.background_stages:
                await stage.start()
                shutdown.on_stop("stages", stage.stop)
                self._reloadable.append(stage)

            async with asyncio.TaskGroup() as tasks:
                scheduler = tasks.create_task(parts.scheduler.run(), name="scheduler")
                shutdown.on_stop("scheduler", _cancel(scheduler))
                if parts.absence is not None:
                    # Stops with the scheduler: a check cut short fires nothing twice (see AbsenceChecker).
                    absence = tasks.create_task(parts.absence.run(), name="absence-checker")
                    shutdown.on_stop("scheduler", _cancel(absence))
                worker = tasks.create_task(parts.worker.run(), name="pipeline-worker")
                shutdown.on_stop("intake", _drain(parts.intake, worker, grace))
                shutdown.on_stop("worker", _cancel(worker))
                servers = [tasks.create_task(s.serve(), name=name) for name, s in parts.servers.items()]
                shutdown.on_stop("http", _stop_servers(parts.servers, servers))
                self.started.set()
                await stop.wait()
                log.info("Shutting down.", grace_seconds=grace)
                if self.response_process is not None:
                    self.response_process.prepare_stop()
                await shutdown.run()
        finally:
            if self.response_process is not None:
                # Also when a part failed: a child ending from now on is part of the stop, not a crash.
                self.response_process.prepare_stop()
            await shutdown.run()

    async def _serve_response(self, parts: ResponseParts, stop: asyncio.Event) -> None:
        """The response process: port 3011, the executor, the loop and their jobs, stopped in
        `STOP_ORDER` like the same parts in one process."""
        shutdown = _shutdown_closing(parts.servers, parts.response_clients)
        try:
            await _start_executions(shutdown, parts.executions, parts.loop)
            async with asyncio.TaskGroup() as tasks:
                scheduler = tasks.create_task(parts.scheduler.run(), name="scheduler")
                shutdown.on_stop("scheduler", _cancel(scheduler))
                servers = [tasks.create_task(s.serve(), name=name) for name, s in parts.servers.items()]
                shutdown.on_stop("http", _stop_servers(parts.servers, servers))
                self.started.set()
                log.info("The response process is listening.", **self.listeners)
                if self._announce is not None:
                    self._announce(dict(self.listeners))
                await stop.wait()
                log.info("The response process is shutting down.")
                await shutdown.run()
        finally:
            await shutdown.run()


def _call(stop: Callable[[float], Awaitable[None]], timeout: float) -> StopStep:
    async def step() -> None:
        await stop(timeout)

    return step


def _cancel(task: asyncio.Task[None]) -> StopStep:
    async def step() -> None:
        task.cancel()
        await asyncio.wait([task])

    return step


def _shutdown_closing(
    servers: dict[str, HttpServer], clients: list[Callable[[], Awaitable[None]]]
) -> Shutdown:
    """A `Shutdown` that releases the servers' sockets and closes the response side's HTTP clients: both
    are built whether or not anything starts, so they are closed in every case."""
    shutdown = Shutdown()
    for server in servers.values():
        shutdown.on_stop("sockets", _close_socket(server))
    for close in clients:
        shutdown.on_stop("response_clients", close)
    return shutdown


async def _start_executions(
    shutdown: Shutdown, executions: ExecutionService, loop: ResponseLoop | None
) -> None:
    """The executor's start recovers what a dead process left running (interrupted, rolled back when
    asked) before any request can submit; the loop starts after it and stops before it (it submits)."""
    await executions.start()
    if loop is not None:
        await loop.start()
        shutdown.on_stop("executions", loop.stop)
    shutdown.on_stop("executions", executions.stop)


def _close_socket(server: HttpServer) -> StopStep:
    async def step() -> None:
        server.close_socket()

    return step


def _stop_servers(servers: dict[str, HttpServer], tasks: list[asyncio.Task[None]]) -> StopStep:
    async def step() -> None:
        for server in servers.values():
            server.stop()
        await asyncio.wait(tasks)

    return step


def _drain(intake: Intake, worker: asyncio.Task[None], grace: float) -> StopStep:
    async def step() -> None:
        intake.close()
        if worker.done():  # it failed: nothing would drain the intake
            return
        try:
            await asyncio.wait_for(intake.wait_drained(), grace)
        except TimeoutError:
            log.error(
                "The intake did not drain within the grace period; events not stored yet are lost.",
                lost=intake.unfinished,
            )

    return step


@contextlib.asynccontextmanager
async def database_session(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the configured database, or on the embedded PostgreSQL (started here, stopped after)."""
    async with database_pools(settings, response=False) as (pool, _, _):
        yield pool


@contextlib.asynccontextmanager
async def database_pools(
    settings: Settings, *, response: bool
) -> AsyncIterator[tuple[asyncpg.Pool, asyncpg.Pool | None, str]]:
    """The service's pool and, with `response`, the response side's own (``database.response_pool_max_size``
    connections): 200 running executions each writing its steps would otherwise queue ahead of the
    pipeline's batches for the shared pool's connections, stalling ingest for seconds. Last, the DSN
    (the embedded PostgreSQL's when none is configured)."""
    async with contextlib.AsyncExitStack() as stack:
        dsn = settings.database.url
        if not dsn:
            embedded = EmbeddedPostgres(Path(settings.data_dir))
            maintenance_dsn = await asyncio.to_thread(embedded.start)
            stack.push_async_callback(asyncio.to_thread, embedded.stop)
            dsn = await ensure_database(maintenance_dsn)
        config = settings.database
        pool = await create_pool(
            dsn,
            min_size=config.pool_min_size,
            max_size=config.pool_max_size,
            connect_timeout=config.connect_timeout_seconds,
            command_timeout=config.command_timeout_seconds,
        )
        stack.push_async_callback(pool.close)
        response_pool = None
        if response:
            response_pool = await create_pool(
                dsn,
                min_size=1,
                max_size=config.response_pool_max_size,
                connect_timeout=config.connect_timeout_seconds,
                command_timeout=config.command_timeout_seconds,
            )
            stack.push_async_callback(response_pool.close)
        yield pool, response_pool, dsn


@contextlib.asynccontextmanager
async def running(
    settings: Settings, *, clock: Clock = utcnow, role: Role = "all"
) -> AsyncIterator[OpsResponder]:
    """Run the service in the background for the duration of the block (tests, embedding).

    `role` ``events`` starts the response side as a child process, as `serve` does; the child then uses
    the real clock whatever `clock` is."""
    service = OpsResponder(settings, clock=clock, role=role)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop), name="opsresponder")
    started = asyncio.create_task(service.started.wait())
    await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        started.cancel()
        task.result()  # raises the start failure
    try:
        yield service
    finally:
        stop.set()
        await task


def _with_bootstrap_token(settings: Settings) -> Settings:
    """With no tokens configured, create (once) an admin token in ``<data_dir>/admin-token``.

    Every endpoint but health needs a token, so a fresh install must have one; it is written to a file
    readable only by us and never logged.
    """
    if settings.api.tokens:
        return settings
    path = Path(settings.data_dir) / BOOTSTRAP_TOKEN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
        log.warning("No API tokens are configured; created an admin token.", token_file=str(path))
    token = path.read_text().strip()
    api = msgspec.structs.replace(
        settings.api, tokens=[TokenConfig(name="bootstrap-admin", token=token, scopes=["admin"])]
    )
    return msgspec.structs.replace(settings, api=api)
