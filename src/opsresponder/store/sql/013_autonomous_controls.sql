-- Operator controls of automatic execution (store/controls.py, response/governor.py).

-- The global kill switch: one row while automatic execution is paused. Kept in PostgreSQL, not in the
-- state backend, so a pause survives restarts and is seen by every replica (each rereads it every
-- response.governor.pause_refresh_seconds).
CREATE TABLE autonomous.automation_pause (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    paused_by  text NOT NULL,
    reason     text NOT NULL DEFAULT '',
    paused_at  timestamptz NOT NULL DEFAULT now()
);

-- Every pause and resume, for the audit trail.
CREATE TABLE autonomous.automation_pause_log (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    action  text NOT NULL CHECK (action IN ('pause', 'resume')),
    by_name text NOT NULL,
    reason  text NOT NULL DEFAULT '',
    at      timestamptz NOT NULL DEFAULT now()
);
