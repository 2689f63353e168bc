"""The Autonomous Response API (port 3011). Its endpoints arrive with the response features; the shared
health, readiness, metrics and schema endpoints are served from the start so operators can probe it."""

from __future__ import annotations

from litestar import Litestar

from opsresponder.api.common import build_app
from opsresponder.api.context import ServiceContext


def build_autonomous_app(ctx: ServiceContext) -> Litestar:
    return build_app(
        ctx,
        title="OpsResponder Autonomous Response API",
        description="Analysis, execution, approvals and feedback (port 3011).",
        handlers=[],
        api="autonomous",
    )
