-- Approval requests of executions that may not run without a person (store/approvals.py,
-- response/approvals.py, docs/response.md "Approvals").

-- One request per execution. `actions` is what the approver sees and approves: the exact actions with
-- their resolved parameters; `plan_hash` is the executions' hash of them, so an approval never applies to
-- actions or parameters that changed after it was requested. `approvers` are token names; empty: nobody
-- may approve (the request can only expire or be rejected).
-- The approval token (issued on approval) is kept as its SHA-256 only; single use (token_used_at).
CREATE TABLE autonomous.approvals (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    execution_id      bigint NOT NULL UNIQUE,
    plan_hash         text NOT NULL,
    status            text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'approved', 'rejected', 'expired')),
    requested_by      text NOT NULL,
    approvers         text[] NOT NULL,
    risk_level        text NOT NULL,
    business_impact   text NOT NULL,
    reason            text NOT NULL,
    actions           jsonb NOT NULL,
    created_at        timestamptz NOT NULL,
    expires_at        timestamptz NOT NULL,
    decided_by        text,
    decided_at        timestamptz,
    comment           text NOT NULL DEFAULT '',
    token_sha256      text UNIQUE,
    token_expires_at  timestamptz,
    token_used_at     timestamptz,
    CHECK ((status = 'pending') = (decided_at IS NULL))
);

-- The expiry job's scan and the pending list.
CREATE INDEX approvals_pending_expiry ON autonomous.approvals (expires_at) WHERE status = 'pending';
