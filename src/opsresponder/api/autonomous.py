"""The Autonomous Response API (port 3011): analysis (api/analysis.py), execution and its control
(api/executions.py), besides the shared health, readiness, metrics and schema endpoints.

Every endpoint of the response side answers 503 where ``response.enabled`` is false.
"""

from __future__ import annotations

from litestar import Litestar

from opsresponder.api.analysis import ANALYSIS_HANDLERS
from opsresponder.api.approvals import APPROVAL_HANDLERS
from opsresponder.api.common import build_app
from opsresponder.api.context import AutonomousApiContext
from opsresponder.api.executions import EXECUTION_HANDLERS
from opsresponder.api.feedback import FEEDBACK_HANDLERS
from opsresponder.api.insights import INSIGHTS_HANDLERS


def build_autonomous_app(ctx: AutonomousApiContext) -> Litestar:
    return build_app(
        ctx,
        title="OpsResponder Autonomous Response API",
        description="Analysis, execution and its control, approvals, the automation pause, feedback and "
        "insights (port 3011).",
        handlers=[
            *ANALYSIS_HANDLERS,
            *EXECUTION_HANDLERS,
            *APPROVAL_HANDLERS,
            *FEEDBACK_HANDLERS,
            *INSIGHTS_HANDLERS,
        ],
        api="autonomous",
    )
