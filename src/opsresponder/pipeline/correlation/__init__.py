"""Correlation (stage 4): the engine (engine.py), message templates (templates.py), the history the state
is rebuilt from at start (history.py) and the ``correlate`` stage (stage.py). See docs/correlation.md."""

from opsresponder.pipeline.correlation.engine import Correlator, Group
from opsresponder.pipeline.correlation.history import CorrelationHistory, NoHistory
from opsresponder.pipeline.correlation.stage import Correlate

__all__ = ["Correlate", "CorrelationHistory", "Correlator", "Group", "NoHistory"]
