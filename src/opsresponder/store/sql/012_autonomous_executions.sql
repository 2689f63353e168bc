-- Executions of decisions (response/executor/, store/executions.py, docs/response.md "Executions").
-- 011 (decisions, outcomes) may create the schema too; nothing here refers to its tables, so the two
-- migrations stand on their own in either order.
CREATE SCHEMA IF NOT EXISTS autonomous;

-- One row per execution, exposed as "exec_<id>". plan is what runs (the chosen decision actions in
-- order, the rollback plan, the variables, the criteria), fixed at submission; plan_hash is the sha256 of
-- its canonical JSON, what an approval token is bound to. options are the request's execution_options.
-- owner and lease_until: the process running it and until when its claim holds (renewed while it runs);
-- a running row whose lease expired belongs to a dead process and is marked interrupted by recovery.
-- cancel_requested: set by whichever process answered the cancel; the owner polls it.
-- rollback_status: null (no rollback asked or run), queued (claimable), running, completed, failed,
-- interrupted.
CREATE TABLE autonomous.executions (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    decision_id         bigint NOT NULL,
    event_id            bigint NOT NULL,
    target              text,
    template_id         text,
    template_version    text,
    status              text NOT NULL CHECK (status IN (
                            'pending_approval', 'queued', 'running', 'completed', 'failed', 'cancelled',
                            'interrupted', 'dry_run', 'rolling_back', 'rolled_back')),
    dry_run             boolean NOT NULL DEFAULT false,
    requested_by        text NOT NULL,
    options             jsonb NOT NULL DEFAULT '{}'::jsonb,
    plan                jsonb NOT NULL,
    plan_hash           text NOT NULL,
    max_minutes         integer NOT NULL CHECK (max_minutes > 0),
    created_at          timestamptz NOT NULL,
    started_at          timestamptz,
    completed_at        timestamptz,
    deadline_at         timestamptz,
    owner               text,
    lease_until         timestamptz,
    error               text,
    cancel_requested    boolean NOT NULL DEFAULT false,
    rollback_requested  boolean NOT NULL DEFAULT false,
    rollback_status     text CHECK (rollback_status IN (
                            'queued', 'running', 'completed', 'failed', 'interrupted')),
    criteria            jsonb
);

CREATE INDEX executions_status ON autonomous.executions (status, id);
CREATE INDEX executions_event ON autonomous.executions (event_id, id);
CREATE INDEX executions_created ON autonomous.executions (created_at);
-- The claim's and the recovery's scans: only the few rows waiting or running are in it.
CREATE INDEX executions_claimable ON autonomous.executions (id)
    WHERE status IN ('queued', 'running', 'rolling_back');

-- The actions of an execution: phase 'action' rows are made with the execution; phase 'rollback' rows
-- when a rollback runs (action_key: the undone action's key, or the template rollback action's id).
CREATE TABLE autonomous.execution_actions (
    execution_id  bigint NOT NULL REFERENCES autonomous.executions (id) ON DELETE CASCADE,
    phase         text NOT NULL CHECK (phase IN ('action', 'rollback')),
    action_key    text NOT NULL,
    action_id     bigint,
    position      integer NOT NULL,
    status        text NOT NULL CHECK (status IN (
                      'queued', 'running', 'completed', 'failed', 'timed_out', 'skipped', 'cancelled',
                      'interrupted', 'would_run', 'rolled_back')),
    started_at    timestamptz,
    completed_at  timestamptz,
    result        jsonb,
    error         text,
    attempt       integer NOT NULL DEFAULT 0,
    PRIMARY KEY (execution_id, phase, action_key)
);

CREATE TABLE autonomous.execution_logs (
    id            bigserial PRIMARY KEY,
    execution_id  bigint NOT NULL REFERENCES autonomous.executions (id) ON DELETE CASCADE,
    at            timestamptz NOT NULL,
    level         text NOT NULL CHECK (level IN ('debug', 'info', 'warning', 'error')),
    message       text NOT NULL,
    action_id     bigint,
    action_key    text
);

CREATE INDEX execution_logs_execution ON autonomous.execution_logs (execution_id, id);
