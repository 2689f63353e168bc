"""Template grouping accuracy on labeled Loghub samples: at least Drain's (drain3, default settings).

Grouping accuracy is deterministic for a given miner and input, so this is an ordinary assertion; the
figures are printed by bench/patterns.py and recorded in docs/patterns.md.
"""

from __future__ import annotations

import pytest

from tests.loghub import Corpus, corpora, drain3, grouping_accuracy, ours

CORPORA = corpora()


def test_the_samples_are_there() -> None:
    assert len(CORPORA) >= 8
    assert all(len(c.messages) >= 30 for c in CORPORA)


@pytest.mark.parametrize("corpus", CORPORA, ids=[c.name for c in CORPORA])
def test_our_grouping_is_at_least_drains_on_each_system(corpus: Corpus) -> None:
    our = grouping_accuracy(corpus.labels, ours(corpus.messages))
    drain = grouping_accuracy(corpus.labels, drain3(corpus.messages))
    assert our >= drain, (corpus.name, our, drain)


def test_our_mean_accuracy_beats_drains() -> None:
    our = [grouping_accuracy(c.labels, ours(c.messages)) for c in CORPORA]
    drain = [grouping_accuracy(c.labels, drain3(c.messages)) for c in CORPORA]
    assert sum(our) / len(our) > sum(drain) / len(drain)


def test_the_metric_counts_a_message_only_when_its_group_is_exact() -> None:
    truth = ["A", "A", "B", "B", "C"]
    assert grouping_accuracy(truth, [1, 1, 2, 2, 3]) == 1.0
    assert grouping_accuracy(truth, [1, 1, 2, 2, 2]) == 0.4  # B and C merged: only A's two are right
    assert grouping_accuracy(truth, [1, 9, 2, 2, 3]) == 0.6  # A split
