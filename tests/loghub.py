"""Labeled Loghub samples (tests/data/loghub) and the grouping accuracy of a template miner on them.

Shared by the accuracy test (tests/unit/pipeline/patterns/test_accuracy.py) and bench/patterns.py.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path

from opsresponder.config import PatternsConfig
from opsresponder.pipeline.patterns.miner import TemplateMiner

CORPORA_DIR = Path(__file__).resolve().parent / "data" / "loghub"


class Corpus:
    """One system's messages in order, each with its ground-truth template id (Loghub's ``EventId``)."""

    def __init__(self, name: str, labels: list[str], messages: list[str]) -> None:
        self.name = name
        self.labels = labels
        self.messages = messages


def corpora() -> list[Corpus]:
    """Every stored sample, by system name."""
    out = []
    for path in sorted(CORPORA_DIR.glob("*.tsv")):
        labels, messages = [], []
        for line in path.read_text(encoding="utf-8").splitlines():
            label, message = line.split("\t", 1)
            labels.append(label)
            messages.append(message)
        out.append(Corpus(path.stem, labels, messages))
    return out


def grouping_accuracy(truth: Sequence[str], predicted: Sequence[Hashable]) -> float:
    """Loghub's grouping accuracy: the share of messages whose predicted group is exactly the set of
    messages of their ground-truth group (Zhu et al., "Tools and Benchmarks for Automated Log Parsing",
    ICSE-SEIP 2019)."""
    members: defaultdict[Hashable, list[str]] = defaultdict(list)
    for label, group in zip(truth, predicted, strict=True):
        members[group].append(label)
    sizes = Counter(truth)
    correct = 0
    for labels in members.values():
        if len(set(labels)) == 1 and sizes[labels[0]] == len(labels):
            correct += len(labels)
    return correct / len(truth)


Grouper = Callable[[Sequence[str]], list[Hashable]]


def ours(messages: Sequence[str], config: PatternsConfig | None = None) -> list[Hashable]:
    """Groups of `messages` by the patterns stage's miner, configured as by default unless `config`."""
    miner = TemplateMiner.from_config(config or PatternsConfig())
    return [miner.add(m).seq for m in messages]


def drain3(messages: Sequence[str]) -> list[Hashable]:
    """Groups of `messages` by drain3 with its default settings (sim_th 0.4, depth 4, no masking)."""
    from drain3 import TemplateMiner as Drain3Miner  # type: ignore[import-untyped]
    from drain3.template_miner_config import TemplateMinerConfig  # type: ignore[import-untyped]

    logging.getLogger("drain3").setLevel(logging.WARNING)
    config = TemplateMinerConfig()
    config.profiling_enabled = False
    miner = Drain3Miner(config=config)
    return [miner.add_log_message(m)["cluster_id"] for m in messages]
