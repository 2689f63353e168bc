-- Retention of the rule-to-response side (store/retention.py, store/firings.py firing_rules,
-- store/response_retention.py, docs/retention.md "The response side").

-- Every retention batch walks its table's timestamp index, oldest first; without one, each batch would
-- scan the whole table. Firings and the response side's rows are written a few per firing or execution,
-- a small fraction of events, so these indexes cost ingest little.
-- Built without CONCURRENTLY because a migration runs in one transaction: on an already large table this
-- blocks writes to it while it builds.

-- Settled firings (and their firing_responses) go after retention.events_days, by fired_at (the rule
-- engine's clock, as the events' received_at).
CREATE INDEX rule_firings_fired_idx ON rules.rule_firings (fired_at);

-- The response audit trail goes after retention.response_days, each table by its own time.
CREATE INDEX decisions_created_idx ON autonomous.decisions (created_at);
CREATE INDEX action_outcomes_finished_idx ON autonomous.action_outcomes (finished_at);
CREATE INDEX execution_scores_scored_idx ON autonomous.execution_scores (scored_at);
CREATE INDEX feedback_created_idx ON autonomous.feedback (created_at);

-- A decision is kept while an execution or a firing's plan names it: the decisions rule checks both,
-- once per candidate row, by these.
CREATE INDEX executions_decision ON autonomous.executions (decision_id);
CREATE INDEX firing_responses_decision ON autonomous.firing_responses (decision_id);
