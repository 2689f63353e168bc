"""The ``score`` stage: ``event.score`` (0-100) and ``metadata.score_factors`` for every event.

CPU only (it never awaits). Reads what earlier stages left: ``metadata.asset`` (``enrich``) and
``metadata.correlation`` (``correlate``); a stage that did not run leaves its factor missing, named in
``metadata.score_missing`` and in the trace. Suppressed events are scored too: the score says how much
the event would have mattered, which is what one asks of a silence.

Duplicates: the stage cannot know which events the store will fold into an existing row, so it scores
every event; a folded duplicate's score is not stored (the row keeps the score of its first occurrence,
its ``duplicate_count`` says how often it repeated). What repetition does change is the score of the next
occurrence that becomes a row of its own (after the dedup window, after a resolve): see `RepetitionCounter`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from opsresponder.config import ScoringConfig
from opsresponder.core.batch import Batch, TraceEntry
from opsresponder.pipeline.scoring.explain import COUNT_ENTRIES
from opsresponder.pipeline.scoring.model import ScoreModel
from opsresponder.pipeline.scoring.repetition import RepetitionCounter

SCORE_FACTORS_KEY: Final = "score_factors"
SCORE_MISSING_KEY: Final = "score_missing"


class Score:
    """Scores each event of a batch and notes in the batch's trace what the row will not say.

    The trace entry is the count of earlier arrivals alone (`compact_entry`): the rest of the score's
    sentence is on the stored event, and the trace API writes the sentence when it is read
    (`pipeline.scoring.explain`)."""

    name: Final = "score"

    def __init__(
        self, config: ScoringConfig, monotonic: Callable[[], float] = time.monotonic, *, trace: bool = True
    ) -> None:
        """`trace`: add each score's entry to the batch's trace (off when ``pipeline.trace`` is)."""
        self._model = ScoreModel(config)
        self._trace = trace
        repetition = config.repetition
        self._repetitions = RepetitionCounter(repetition.window_minutes * 60, repetition.max_fingerprints)
        self._monotonic = monotonic

    async def run(self, batch: Batch) -> None:
        now = self._monotonic()
        observe = self._repetitions.observe
        assess = self._model.assess
        trace = batch.trace if self._trace else None
        entries, known = COUNT_ENTRIES, len(COUNT_ENTRIES)
        name = self.name
        for event in batch.events:
            score, _, factors, missing, inputs = assess(event, observe(event.fingerprint, now))
            event.score = float(score)
            metadata = event.metadata
            metadata[SCORE_FACTORS_KEY] = factors
            if missing:
                metadata[SCORE_MISSING_KEY] = missing
            else:
                metadata.pop(SCORE_MISSING_KEY, None)
            if trace is not None:
                # compact_entry(repeats), without a call per event.
                repeats = inputs[4]
                trace.append(TraceEntry(event, name, entries[repeats] if repeats < known else str(repeats)))
