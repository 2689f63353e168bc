"""``OPTIONS`` for every path, answering ``Allow`` with the methods the path really has.

Litestar 2 creates an OPTIONS handler when the first handler of a path is registered and keeps it when
more handlers join that path, so its ``Allow`` names only the first handler's methods (litestar-org/litestar
#4169, fixed in 3.0 only): ``OPTIONS /api/v1/subscriptions`` said ``OPTIONS, POST`` although GET works.
`options_handlers` makes one handler per path from the whole list instead; a path that has its own OPTIONS
handler gets no automatic one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from litestar import Response
from litestar.handlers import HTTPRouteHandler
from litestar.types import ControllerRouterHandler


def options_handlers(handlers: Iterable[ControllerRouterHandler]) -> list[HTTPRouteHandler]:
    """One OPTIONS handler per path of `handlers` (route handler functions), each naming every method."""
    methods: defaultdict[str, set[str]] = defaultdict(set)
    for handler in handlers:
        if isinstance(handler, HTTPRouteHandler):
            for path in handler.paths:
                methods[path].update(handler.http_methods)
    return [_options(path, allowed | {"OPTIONS"}) for path, allowed in methods.items()]


def _options(path: str, allowed: set[str]) -> HTTPRouteHandler:
    allow = ", ".join(sorted(allowed))

    def answer() -> Response[Any]:
        return Response(content=None, status_code=204, headers={"Allow": allow})

    # Same scope as Litestar's own OPTIONS handlers (the default, `read`): no token, no answer.
    return HTTPRouteHandler(
        path=path, http_method=["OPTIONS"], include_in_schema=False, sync_to_thread=False
    )(answer)
