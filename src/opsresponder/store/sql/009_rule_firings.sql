-- Rule firings (store/firings.py, pipeline/rules/, docs/rules-evaluation.md): the history of every
-- firing and the outbox the response side claims from.

-- One row per firing of one rule for one group. Trigger firings are written in the transaction of the
-- event that completed them; absence firings by the absence checker. rule_id has no foreign key on
-- purpose: firings are history and outlive an edited or deleted rule.
-- status: new -> claimed (by claimed_by until lease_until; an expired lease is claimed again) -> done or
-- failed; a released firing goes back to new.
CREATE TABLE rules.rule_firings (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Made with the firing, before any transaction: a retried write of the same firing is a no-op.
    firing_key  uuid NOT NULL UNIQUE,
    rule_id     bigint NOT NULL,
    group_key   text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('trigger', 'absence')),
    event_ids   bigint[] NOT NULL DEFAULT '{}',
    fired_at    timestamptz NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}',
    status      text NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'claimed', 'done', 'failed')),
    claimed_by  text,
    claimed_at  timestamptz,
    lease_until timestamptz,
    attempts    integer NOT NULL DEFAULT 0,
    last_error  text
);

-- GET /api/v1/rules/triggers/{rule_id}/firings, newest first.
CREATE INDEX rule_firings_rule_idx ON rules.rule_firings (rule_id, id DESC);
-- The consumer's claim: only open firings, oldest first.
CREATE INDEX rule_firings_open_idx ON rules.rule_firings (id) WHERE status IN ('new', 'claimed');
