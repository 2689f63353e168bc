-- At-least-once approval notifications (store/approvals.py, response/approvals.py, docs/response.md
-- "Approvals"): a request's message (approval_requested while pending, approval_expired once expired) is
-- sent after the commit that made it due; a process that dies in between leaves it unsent, and the
-- approval_expiry job's sweep sends it again from these columns.

-- `notify_context`: what the request's message renders besides the request itself (the event, the
-- decision), kept for a re-send; never a secret (the event's identifying fields, the decision's ids).
-- `notified_at`: when the message of the current status was last sent; null: not yet (owed while the status
-- is pending or expired; approved and rejected have none). A status change that owes a message resets it.
-- `notify_due_at`: the sweep takes the row no earlier than this: the time the message became owed
-- ('-infinity' for a row written without it: once the grace allows), then a lease while one sweep sends
-- it (so two replicas never both take it), then the backoff after a try whose every channel failed;
-- 'infinity' once the sweep gave up. `notify_attempts`: the sweep's tries of the current status's message.
ALTER TABLE autonomous.approvals
    ADD COLUMN notify_context  jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN notified_at     timestamptz DEFAULT now(),
    ADD COLUMN notify_due_at   timestamptz NOT NULL DEFAULT '-infinity',
    ADD COLUMN notify_attempts integer NOT NULL DEFAULT 0;

-- `notified_at` defaults to "sent": a replica of the previous release (during a rolling upgrade) writes
-- requests without it, and announces them itself; this release writes null explicitly.
-- Requests older than this migration were announced by the old code or never will be (their context was
-- not kept): marked notified, so the first sweep does not announce them all again.
UPDATE autonomous.approvals SET notified_at = coalesce(decided_at, created_at);

-- The sweep's scan: only requests whose message is still owed, normally none but those of the last
-- seconds (and the given-up ones, at 'infinity', past the end of every scan).
CREATE INDEX approvals_unnotified ON autonomous.approvals (notify_due_at)
    WHERE notified_at IS NULL AND status IN ('pending', 'expired');
