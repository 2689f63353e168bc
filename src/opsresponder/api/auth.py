"""Bearer-token authentication with scopes.

Every route except ``/health`` and ``/ready`` needs a token. Each route handler names the scope it needs in
its ``opt`` (`scope_opt`); the ASGI middleware authenticates (401), checks the scope (403) and leaves the
principal in the ASGI scope. ``admin`` holds every scope.
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
from litestar.exceptions import NotAuthorizedException
from litestar.types import ASGIApp, Receive, Scope, Send

from opsresponder.api.errors import encode_error, send_json
from opsresponder.config import TokenConfig

PRINCIPAL_KEY: Final = "opsresponder.principal"
SCOPE_OPT: Final = "required_scope"
PUBLIC: Final = "public"
# A route that declares nothing needs `read`: forgetting the declaration never opens an endpoint.
DEFAULT_SCOPE: Final = "read"


class Principal(msgspec.Struct, frozen=True):
    """Who made a request: the token's configured name and its scopes (never the token itself)."""

    name: str
    scopes: frozenset[str]
    roles: frozenset[str] = frozenset()

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


class TokenAuthenticator:
    """Maps a presented bearer token to its `Principal`, in time independent of which token matched."""

    def __init__(self, tokens: Sequence[TokenConfig]) -> None:
        self._entries = [
            (
                hashlib.sha256(t.token.encode()).digest(),
                Principal(t.name, frozenset(t.scopes), frozenset(t.roles)),
            )
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


def scope_opt(scope: str) -> dict[str, str]:
    """The ``opt`` of a route handler that needs `scope` (`PUBLIC` for no token at all)."""
    return {SCOPE_OPT: scope}


class AuthMiddleware:
    """ASGI middleware: 401 without a known token, 403 when its scopes lack the route's.

    Litestar runs app middleware after routing, so the matched handler's ``opt`` says what it needs. Doing
    this here rather than in guards keeps it off Litestar's guard path, which copies the handler and runs
    synchronous guards in a thread on every request.
    """

    def __init__(self, app: ASGIApp, authenticator: TokenAuthenticator) -> None:
        self._app = app
        self._authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self._app(scope, receive, send)
            return
        handler = scope.get("route_handler")
        required = handler.opt.get(SCOPE_OPT, DEFAULT_SCOPE) if handler is not None else DEFAULT_SCOPE
        if required == PUBLIC:
            await self._app(scope, receive, send)
            return
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        principal = await authorize(self._authenticator, authorization, required, send)
        if principal is None:
            return
        scope.setdefault("state", {})[PRINCIPAL_KEY] = principal
        await self._app(scope, receive, send)


async def authorize(
    authenticator: TokenAuthenticator, authorization: str | None, required: str, send: Send
) -> Principal | None:
    """The caller's principal when its token holds `required`; else answers 401 or 403 and returns None."""
    principal = authenticator.authenticate(authorization)
    if principal is None:
        await send_error(send, 401, "a valid bearer token is required", www_authenticate=True)
        return None
    if not principal.allows(required):
        await send_error(send, 403, f"this token lacks the '{required}' scope")
        return None
    return principal


async def send_error(send: Send, status: int, message: str, *, www_authenticate: bool = False) -> None:
    headers = [(b"www-authenticate", b'Bearer realm="opsresponder"')] if www_authenticate else []
    await send_json(send, status, encode_error(status, message), headers)


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """The authenticated caller of a request that passed `AuthMiddleware`."""
    principal = connection.scope.get("state", {}).get(PRINCIPAL_KEY)
    if not isinstance(principal, Principal):
        raise NotAuthorizedException("a valid bearer token is required")
    return principal
