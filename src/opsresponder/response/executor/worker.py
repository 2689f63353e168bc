"""The local worker: claims queued executions and runs them (filled in next)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from opsresponder.config import ExecutorConfig
from opsresponder.response.executor.ports import OutcomeSink
from opsresponder.response.notify.base import Notifier
from opsresponder.response.runners.base import Runner
from opsresponder.rules.templates import ScriptCatalog
from opsresponder.state.base import StateBackend
from opsresponder.store.executions import ExecutionRepository


class Worker:
    def __init__(
        self,
        *,
        repository: ExecutionRepository,
        runner: Runner,
        notifier: Notifier,
        catalog: ScriptCatalog,
        outcomes: OutcomeSink,
        state: StateBackend,
        config: ExecutorConfig,
        owner: str,
        clock: Callable[[], datetime],
    ) -> None:
        self.owner = owner

    def wake(self) -> None:
        pass

    def cancel_local(self, execution_id: int, reason: str) -> None:
        pass

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def run_until_idle(self) -> None:
        pass
