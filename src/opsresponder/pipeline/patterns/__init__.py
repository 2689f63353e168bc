"""The ``patterns`` stage: event titles reduced to message templates (docs/patterns.md).

- `masking`: numbers, addresses, ids and paths replaced by typed tokens.
- `miner`: `TemplateMiner`, a Drain-like online template miner with a size cap, and `template_id`.
- `stage`: `Patterns`, the stage, and `PatternSource`, where it reads known templates at start,
  and `stored_detail`, its trace entry as the trace API serves it.
"""

from opsresponder.pipeline.patterns.masking import mask
from opsresponder.pipeline.patterns.miner import Template, TemplateMiner, template_id
from opsresponder.pipeline.patterns.stage import (
    NoPatterns,
    PatternMetrics,
    Patterns,
    PatternSource,
    stored_detail,
)

__all__ = [
    "NoPatterns",
    "PatternMetrics",
    "PatternSource",
    "Patterns",
    "Template",
    "TemplateMiner",
    "mask",
    "stored_detail",
    "template_id",
]
