-- Review fixes of the response side (docs/response.md): one feedback per person and execution, the
-- rule-to-response loop's record of what each firing created, and the "acting" state of a failed
-- verification whose rollback and learning step are not done yet.

-- One feedback per (execution, person): a repeat replaces the earlier one (store/feedback.py upserts).
-- Older duplicates are dropped first, keeping each person's newest.
DELETE FROM autonomous.feedback AS f
USING autonomous.feedback AS newer
WHERE newer.execution_id = f.execution_id AND newer.given_by = f.given_by
  AND (newer.created_at, newer.id) > (f.created_at, f.id);
CREATE UNIQUE INDEX feedback_one_per_person ON autonomous.feedback (execution_id, given_by);

-- What the loop decided for a firing (response/loop.py): the decision and how its actions were split,
-- written once (the primary key) before any execution is submitted. A retried firing reuses it, and
-- submits only the parts whose execution does not exist yet (found by decision, requester and part).
CREATE TABLE autonomous.firing_responses (
    firing_id            bigint PRIMARY KEY,
    decision_id          bigint NOT NULL,
    automatic_action_ids integer[] NOT NULL,
    approval_action_ids  integer[] NOT NULL,
    approval_reason      text,
    created_at           timestamptz NOT NULL
);
-- At most one automatic and one approval execution per loop decision, even when two consumers handle one
-- firing at once (a lease that expired under a slow handler): the second insert fails, and its retry
-- finds the first's execution.
CREATE UNIQUE INDEX executions_loop_part
    ON autonomous.executions (decision_id, (coalesce((plan ->> 'automatic')::boolean, false)))
    WHERE requested_by = 'rules' AND NOT dry_run;

-- A failed verdict is written as 'acting' until the rollback is requested and learning has recorded the
-- failure; a checker retries an acting row when it is due, and it becomes 'failed' once both are done.
ALTER TABLE autonomous.verifications DROP CONSTRAINT verifications_status_check;
ALTER TABLE autonomous.verifications
    ADD CONSTRAINT verifications_status_check CHECK (status IN ('pending', 'acting', 'passed', 'failed'));
-- `rollback`: null until the rollback step is done, then whether the rollback was requested or was not
-- possible (the execution's state allowed none): a retry does not ask twice.
ALTER TABLE autonomous.verifications
    ADD COLUMN rollback text CHECK (rollback IN ('requested', 'not_possible'));
DROP INDEX autonomous.verifications_due;
CREATE INDEX verifications_due ON autonomous.verifications (due_at) WHERE status IN ('pending', 'acting');
