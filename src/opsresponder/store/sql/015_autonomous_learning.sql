-- Closed-loop verification, feedback and learning (store/verifications.py, store/feedback.py,
-- store/learning.py, response/verification.py, response/learning/; docs/response.md "Verification" and
-- "Feedback and learning").

-- One verification per completed execution that changed its target. `action_keys` are the remediating
-- actions whose outcomes become failures when it fails. Checked by the scheduler's `verification` job:
-- a checker takes due rows by moving `due_at` ahead (a lease: FOR UPDATE SKIP LOCKED), and a verdict is
-- written only `WHERE status = 'pending'`, so a verification is decided, and acted on, exactly once.
CREATE TABLE autonomous.verifications (
    execution_id   bigint PRIMARY KEY,
    fingerprint    text,
    action_keys    text[] NOT NULL,
    criteria       jsonb,
    since          timestamptz NOT NULL,
    due_at         timestamptz NOT NULL,
    quiet_until    timestamptz NOT NULL,
    status         text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'passed', 'failed')),
    reason         text NOT NULL DEFAULT '',
    checks         integer NOT NULL DEFAULT 0,
    checked_at     timestamptz,
    created_at     timestamptz NOT NULL
);
CREATE INDEX verifications_due ON autonomous.verifications (due_at) WHERE status = 'pending';

-- Feedback (POST /api/v1/autonomous/feedback). `effect` is what learning made of it: a pseudo-outcome
-- of `weight` runs, success or failure, for each action of the execution (null: neutral, no effect).
CREATE TABLE autonomous.feedback (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    execution_id        text NOT NULL,
    decision_id         bigint NOT NULL,
    feedback_type       text NOT NULL,
    rating              smallint NOT NULL CHECK (rating BETWEEN 1 AND 5),
    feedback            text,
    comments            text NOT NULL DEFAULT '',
    suggestions         text NOT NULL DEFAULT '',
    would_approve_again boolean,
    given_by            text NOT NULL,
    effect              boolean,
    weight              double precision NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL
);
CREATE INDEX feedback_execution ON autonomous.feedback (execution_id);

-- The outcome analysis of each ended execution: its success and efficiency scores and their inputs.
CREATE TABLE autonomous.execution_scores (
    execution_id       text PRIMARY KEY,
    decision_id        bigint NOT NULL,
    template_id        text,
    pattern_id         text,
    event_type         text NOT NULL,
    status             text NOT NULL,
    criteria_met       boolean,
    verification       text,
    rolled_back        boolean NOT NULL,
    success_score      double precision NOT NULL,
    efficiency_score   double precision,
    duration_seconds   double precision,
    estimated_seconds  double precision,
    scored_at          timestamptz NOT NULL
);
CREATE INDEX execution_scores_template ON autonomous.execution_scores (template_id, scored_at);

-- Learning's only lever on later decisions besides confidence: an action demoted to "approval required".
-- One row per template action ever evaluated; every change is kept in action_policy_changes.
CREATE TABLE autonomous.action_policies (
    template_id    text NOT NULL,
    action_key     text NOT NULL,
    demoted        boolean NOT NULL,
    reason         text NOT NULL,
    changed_at     timestamptz NOT NULL,
    PRIMARY KEY (template_id, action_key)
);
CREATE TABLE autonomous.action_policy_changes (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    template_id    text NOT NULL,
    action_key     text NOT NULL,
    change         text NOT NULL CHECK (change IN ('demoted', 'promoted')),
    reason         text NOT NULL,
    runs           double precision NOT NULL,
    success_rate   double precision,
    at             timestamptz NOT NULL
);
CREATE INDEX action_policy_changes_template ON autonomous.action_policy_changes (template_id, at);
