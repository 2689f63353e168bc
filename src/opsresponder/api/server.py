"""Serving a Litestar app with uvicorn inside our own task group, on a socket we bound ourselves.

Binding first turns a taken port into a clear error at start (uvicorn would call ``sys.exit``), lets port 0
pick a free port whose number we can report, and keeps signal handling with the composition root.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Generator

import uvicorn
from litestar.types import ASGIApp

from opsresponder.core.errors import OpsResponderError


class BindError(OpsResponderError):
    """A listening socket could not be bound (port in use, bad address, no permission)."""


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # Signals belong to the composition root, which stops every part in order.
        yield


def bind_tcp(host: str, port: int, what: str, backlog: int = 2048) -> socket.socket:
    """Bind and listen on ``host:port`` (port 0: any free port).

    Raises:
        BindError: naming `what`, the address and the reason.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise BindError(f"{what}: cannot resolve listen address {host!r}: {e.strerror}") from e
    family, socktype, proto, _, address = infos[0]
    sock = socket.socket(family, socktype, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(backlog)
    except OSError as e:
        sock.close()
        raise BindError(f"{what}: cannot listen on {host}:{port}: {e.strerror}") from e
    sock.setblocking(False)
    return sock


def address_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class HttpServer:
    """One uvicorn server for one app on one pre-bound socket."""

    def __init__(self, app: ASGIApp, sock: socket.socket, graceful_seconds: float) -> None:
        self.socket = sock
        config = uvicorn.Config(
            app,
            lifespan="off",
            log_config=None,
            access_log=False,
            http="httptools",
            server_header=False,
            timeout_graceful_shutdown=max(1, int(graceful_seconds)),
            timeout_keep_alive=30,
        )
        self._server = _EmbeddedServer(config)

    async def serve(self) -> None:
        await self._server.serve(sockets=[self.socket])

    def stop(self) -> None:
        """Stop accepting; in-flight requests finish within the graceful timeout."""
        self._server.should_exit = True

    def close_socket(self) -> None:
        """Release the socket of a server that never served (a later part of the start failed)."""
        if self.socket.fileno() != -1:
            self.socket.close()
