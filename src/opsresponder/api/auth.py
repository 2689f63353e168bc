"""Bearer-token authentication with scopes.

Every path except ``/health`` and ``/ready`` needs a token. The ASGI middleware authenticates (401) and
leaves the principal in the ASGI scope; route guards check scopes (403). ``admin`` holds every scope.
Tokens are compared in constant time against every configured token, and never logged.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Any, Final

import msgspec
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.types import ASGIApp, Guard, Receive, Scope, Send

from opsresponder.config import TokenConfig

PUBLIC_PATHS: Final = frozenset({"/health", "/ready"})
PRINCIPAL_KEY: Final = "opsresponder.principal"
SCHEMA_PREFIX: Final = "/schema"


class Principal(msgspec.Struct, frozen=True):
    """Who made a request: the token's configured name and its scopes (never the token itself)."""

    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


class TokenAuthenticator:
    """Maps a presented bearer token to its `Principal`, in time independent of which token matched."""

    def __init__(self, tokens: Sequence[TokenConfig]) -> None:
        self._entries = [
            (hashlib.sha256(t.token.encode()).digest(), Principal(t.name, frozenset(t.scopes)))
            for t in tokens
        ]

    def authenticate(self, authorization: str | None) -> Principal | None:
        if not authorization:
            return None
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            return None
        presented = hashlib.sha256(credentials.strip().encode()).digest()
        found: Principal | None = None
        for digest, principal in self._entries:
            # No early exit: every configured token is compared, so timing says nothing about which matched.
            if hmac.compare_digest(digest, presented):
                found = principal
        return found


class AuthMiddleware:
    """ASGI middleware: 401 for a missing or unknown token; the schema also needs the ``read`` scope."""

    def __init__(self, app: ASGIApp, authenticator: TokenAuthenticator) -> None:
        self._app = app
        self._authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["path"] in PUBLIC_PATHS:
            await self._app(scope, receive, send)
            return
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        principal = self._authenticator.authenticate(authorization)
        if principal is None:
            await _send_error(send, 401, "a valid bearer token is required", www_authenticate=True)
            return
        if scope["path"].startswith(SCHEMA_PREFIX) and not principal.allows("read"):
            await _send_error(send, 403, "this token lacks the 'read' scope")
            return
        scope.setdefault("state", {})[PRINCIPAL_KEY] = principal
        await self._app(scope, receive, send)


async def _send_error(send: Send, status: int, message: str, *, www_authenticate: bool = False) -> None:
    body = msgspec.json.encode({"status_code": status, "detail": message})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if www_authenticate:
        headers.append((b"www-authenticate", b'Bearer realm="opsresponder"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    principal = connection.scope.get("state", {}).get(PRINCIPAL_KEY)
    if not isinstance(principal, Principal):
        raise NotAuthorizedException("a valid bearer token is required")
    return principal


def require_scope(scope: str) -> Guard:
    """A route guard: 403 unless the request's token holds `scope` (or ``admin``)."""

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if not principal_of(connection).allows(scope):
            raise PermissionDeniedException(f"this token lacks the '{scope}' scope")

    return guard
