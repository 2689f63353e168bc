"""A TCP proxy a test can cut and restore, to play a database outage without touching the real server."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import parse_qs, urlsplit, urlunsplit


class CuttableProxy:
    """Forwards 127.0.0.1:<port> to a TCP or Unix-socket target; `cut` drops every connection and refuses
    new ones until `restore`."""

    def __init__(self, target_host: str, target_port: int, unix_path: str | None = None) -> None:
        self._target = (target_host, target_port)
        self._unix_path = unix_path
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._cut = False
        self.port = 0

    @classmethod
    def for_database(cls, database_url: str) -> CuttableProxy:
        """A proxy to the PostgreSQL server of `database_url`, over TCP or, for the embedded server (used
        when no test URL is configured), over the Unix socket named in the URL's query."""
        parts = urlsplit(database_url)
        socket_dir = parse_qs(parts.query).get("host", [None])[0]
        unix_path = f"{socket_dir}/.s.PGSQL.{parts.port or 5432}" if socket_dir else None
        return cls(parts.hostname or "127.0.0.1", parts.port or 5432, unix_path=unix_path)

    def url_for(self, database_url: str) -> str:
        """`database_url` reached through this proxy (once started)."""
        parts = urlsplit(database_url)
        netloc = f"{parts.username or 'postgres'}@127.0.0.1:{self.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def cut(self) -> None:
        self._cut = True
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def restore(self) -> None:
        self._cut = False

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            writer.transport.abort()
            return
        try:
            if self._unix_path is not None:
                up_reader, up_writer = await asyncio.open_unix_connection(self._unix_path)
            else:
                up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        dst.transport.abort()
        self._writers.discard(dst)
