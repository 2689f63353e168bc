"""Rule evaluation in the pipeline: the ``rules`` stage, its engine and the absence checker."""

from opsresponder.pipeline.rules.absence import AbsenceChecker
from opsresponder.pipeline.rules.book import RuleBook
from opsresponder.pipeline.rules.engine import Evaluation, RuleEngine
from opsresponder.pipeline.rules.metrics import RuleMetrics
from opsresponder.pipeline.rules.stage import Rules

__all__ = ["AbsenceChecker", "Evaluation", "RuleBook", "RuleEngine", "RuleMetrics", "Rules"]
