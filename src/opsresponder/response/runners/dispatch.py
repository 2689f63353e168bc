"""One `Runner` for every catalog script: a script with a ``command`` goes to the script runner, one
with an ``http`` call to the HTTP runner (the catalog guarantees exactly one of the two)."""

from __future__ import annotations

from opsresponder.response.runners.base import ActionRequest, Runner, RunResult


class CatalogRunner:
    """Runs any catalog script (`Runner`) by choosing the runner its entry calls for."""

    def __init__(self, script_runner: Runner, http_runner: Runner) -> None:
        self._script = script_runner
        self._http = http_runner

    async def run(self, request: ActionRequest) -> RunResult:
        if request.script.command is not None:
            return await self._script.run(request)
        if request.script.http is not None:
            return await self._http.run(request)
        return RunResult(success=False, error=f"script {request.script.name} has neither command nor http")
