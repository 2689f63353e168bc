"""The contract of a pipeline stage; `pipeline.stages` holds the stages and builds the configured list."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from opsresponder.core.batch import Batch


class Stage(Protocol):
    """One step over a whole batch, between the intake and the store.

    The worker awaits ``run`` on every stage in the configured order (``pipeline.stages``), then stores
    the batch; callers wait for the commit, so a stage's time is every caller's latency.

    - Work over the whole batch: a stage that needs I/O (the state backend for silences, flapping,
      cooldown windows) awaits it once per batch, gathering its keys over all events first, never once
      per event. A stage with no I/O never awaits at all: it costs what a plain function over the list
      costs. No per-event allocation that the work itself does not need.
    - Change the events in place; add what later stages and the store's writers need to the `Batch`
      (``trace``, or under a `BatchKey`); never reorder or remove events (see `Batch`).
    - A stage that raises loses its batch: it is logged at ERROR with ``stage=<name>`` and the traceback,
      counted in ``opsresponder_events_dropped_total{stage="<name>",reason="stage_error"}``, HTTP callers
      get a 500 at once, and the pipeline goes on with the next batch. So a stage whose backend is down
      should degrade (let the events through unchanged, count it) rather than raise, unless losing the
      batch is the better outcome.
    - Dependencies come through the constructor (see `pipeline.stages.StageDeps`); building a stage does
      no I/O, so ``check-config`` can build the configured list as the start does.
    """

    @property
    def name(self) -> str:
        """The stage's name in ``pipeline.stages``, in metrics labels and in log lines."""
        ...

    async def run(self, batch: Batch) -> None: ...


@runtime_checkable
class BackgroundStage(Protocol):
    """A stage with work of its own outside batches (watching a file, filling a cache).

    The app calls `start` before the worker runs and `stop` after it has stopped (``app.STOP_ORDER``:
    ``stages``), and `reload` on SIGHUP. A stage that is never started must still work (it may load
    what it needs on its first batch), so a worker built without the app behaves the same.
    """

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def reload(self) -> None:
        """Reread what the stage loads from outside (SIGHUP); returns at once, the work runs in a task."""
        ...
