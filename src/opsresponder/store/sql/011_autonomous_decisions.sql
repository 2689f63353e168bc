-- Decisions and action outcomes of the autonomous response side (store/decisions.py, store/outcomes.py,
-- response/analysis/, docs/response.md "Analysis and risk").

-- One row per analysis (POST /api/v1/autonomous/analyze, or the automatic loop): the spec's decision_id.
-- Everything the analysis read is kept (inputs) next to what it concluded (analysis, approval), so a
-- decision can be audited and learned from after the event, the template or the config changed. event_id
-- has no foreign key: decisions are history and outlive the event's retention.
CREATE TABLE autonomous.decisions (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id         bigint NOT NULL,
    created_at       timestamptz NOT NULL,
    requested_by     text NOT NULL,
    target           text,
    fingerprint      text,
    pattern_id       text,
    template_id      text,
    template_version text,
    variables        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(variables) = 'object'),
    inputs           jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(inputs) = 'object'),
    analysis         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(analysis) = 'object'),
    approval         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(approval) = 'object')
);

CREATE INDEX decisions_event_idx ON autonomous.decisions (event_id, id DESC);

-- The recommended actions of a decision, in the template's order (position). action_id is the spec's
-- action_id, unique across all decisions. body holds the rest of response DecisionAction (resolved
-- parameters, risk, estimates), which only the executor reads, always with its decision.
CREATE TABLE autonomous.decision_actions (
    action_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    decision_id bigint NOT NULL REFERENCES autonomous.decisions (id) ON DELETE CASCADE,
    position    integer NOT NULL CHECK (position >= 0),
    key         text NOT NULL,
    body        jsonb NOT NULL CHECK (jsonb_typeof(body) = 'object'),
    UNIQUE (decision_id, position),
    UNIQUE (decision_id, key)
);

-- How each action of each execution ended (written by the executor when an execution ends). One row per
-- (execution, action): a retried write after a crash replaces the row instead of counting the run twice.
-- No foreign keys: outcomes are the learning history and outlive decisions and executions.
CREATE TABLE autonomous.action_outcomes (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    execution_id     text NOT NULL,
    decision_id      bigint NOT NULL,
    event_id         bigint NOT NULL,
    template_id      text,
    action_key       text NOT NULL,
    script           text,
    event_type       text NOT NULL,
    pattern_id       text,
    target           text,
    status           text NOT NULL,
    success          boolean NOT NULL,
    duration_seconds double precision NOT NULL CHECK (duration_seconds >= 0),
    rolled_back      boolean NOT NULL DEFAULT false,
    finished_at      timestamptz NOT NULL,
    UNIQUE (execution_id, action_key)
);

-- The analysis's statistics: the outcomes of one template's actions on events of the same message
-- template (pattern), else of the same event type, since a date. Both orders serve one query.
CREATE INDEX action_outcomes_pattern_idx
    ON autonomous.action_outcomes (template_id, action_key, pattern_id, finished_at);
CREATE INDEX action_outcomes_event_type_idx
    ON autonomous.action_outcomes (template_id, action_key, event_type, finished_at);

-- Which rules fired for an event (analysis: a template linked to such a rule applies). Firings are written
-- only when a rule fires, a small fraction of events, so this index costs ingest little.
CREATE INDEX rule_firings_event_ids_idx ON rules.rule_firings USING gin (event_ids);
