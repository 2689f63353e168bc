"""Retention of the response side's audit trail (schema ``autonomous``), after ``retention.response_days``.

One function for the whole schema rather than one per repository, because the rules depend on each other
and on their order: a decision is kept while an execution names it, so executions go first, and the
decisions they leave behind go in the same run.

What goes, each table by its own time (docs/retention.md "The response side"):

- ``executions`` (``created_at``) that are settled: finished, or a dry run. Queued, running,
  pending_approval and rolling_back ones are kept however old, and so is one whose verification has not
  decided yet (the verdict may still ask for a rollback). Their actions and logs go by ``ON DELETE
  CASCADE``; their approval and verification (no foreign keys) in the same statement (``also_delete``).
- ``decisions`` (``created_at``) that no remaining execution and no firing's plan
  (``firing_responses``) names; their actions by ``ON DELETE CASCADE``.
- ``action_outcomes`` (``finished_at``), ``execution_scores`` (``scored_at``), ``feedback``
  (``created_at``): the learning history. Outcomes feed the analysis's success probabilities over
  ``response.analysis.history_days`` and the action policies' last runs; what is older than
  ``response_days`` no longer counts.

Kept forever, being small and the explanation of the current state: ``action_policies`` and
``action_policy_changes`` (why an action is demoted), ``automation_pause`` and its log.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from opsresponder.store.executions import FINISHED
from opsresponder.store.retention import RetentionRule

SETTLED_EXECUTIONS: Final = tuple(sorted(FINISHED | {"dry_run"}))
"""Execution states retention may delete: nothing runs in them any more, and nothing claims them."""

# Rows of an execution without a foreign key to it (approvals and verifications are keyed by its id);
# its actions and logs have one, with ON DELETE CASCADE.
EXECUTION_DEPENDENTS: Final = (
    ("autonomous.approvals", "execution_id"),
    ("autonomous.verifications", "execution_id"),
)

# A verification still 'pending' or 'acting' may yet request a rollback of its execution and turn its
# outcomes into failures: both need the execution.
_SETTLED_LIST: Final = ", ".join(f"'{s}'" for s in SETTLED_EXECUTIONS)
_UNSETTLED_EXECUTION: Final = (
    f"t.status NOT IN ({_SETTLED_LIST}) "
    "OR EXISTS (SELECT 1 FROM autonomous.verifications AS v "
    "WHERE v.execution_id = t.id AND v.status IN ('pending', 'acting'))"
)

# An execution is submitted for a decision, possibly long after it (an approval); a firing's plan is reused
# by a retry of its firing. Rows named by either keep their decision; after the executions rule ran, the
# executions left are the recent and the kept ones. Both lookups have an index (migration 017): with
# 1,000,000 executions PostgreSQL probes it per candidate; with 100,000 it rather hashes the table once
# per batch, about 0.5 s per 5,000-decision batch (EXPLAIN ANALYZE, 2-core machine). Decisions are never
# updated, so the batch's row locks hold nothing up.
_DECISION_IN_USE: Final = (
    "EXISTS (SELECT 1 FROM autonomous.executions AS e WHERE e.decision_id = t.id) "
    "OR EXISTS (SELECT 1 FROM autonomous.firing_responses AS r WHERE r.decision_id = t.id)"
)


def response_rules(*, max_age: timedelta, batch_size: int) -> list[RetentionRule]:
    """The rules of the ``autonomous`` schema, executions before decisions (see the module's docstring)."""
    return [
        RetentionRule(
            "autonomous.executions",
            "created_at",
            max_age,
            batch_size,
            keep_if=_UNSETTLED_EXECUTION,
            also_delete=EXECUTION_DEPENDENTS,
        ),
        RetentionRule("autonomous.decisions", "created_at", max_age, batch_size, keep_if=_DECISION_IN_USE),
        RetentionRule("autonomous.action_outcomes", "finished_at", max_age, batch_size),
        RetentionRule("autonomous.execution_scores", "scored_at", max_age, batch_size),
        RetentionRule("autonomous.feedback", "created_at", max_age, batch_size),
    ]
