"""Severity scoring (stage 5): the ``score`` stage, its formula, its repetition counter and its sentence."""

from opsresponder.pipeline.scoring.explain import FACTORS, compact_entry, stored_sentence
from opsresponder.pipeline.scoring.model import Scored, ScoreModel
from opsresponder.pipeline.scoring.repetition import RepetitionCounter
from opsresponder.pipeline.scoring.stage import Score

__all__ = [
    "FACTORS",
    "RepetitionCounter",
    "Score",
    "ScoreModel",
    "Scored",
    "compact_entry",
    "stored_sentence",
]
