"""Severity scoring (stage 5): the ``score`` stage, its formula and its repetition counter."""

from opsresponder.pipeline.scoring.model import FACTORS, Scored, ScoreModel
from opsresponder.pipeline.scoring.repetition import RepetitionCounter
from opsresponder.pipeline.scoring.stage import Score

__all__ = ["FACTORS", "RepetitionCounter", "Score", "ScoreModel", "Scored"]
