-- Trigger rules (store/trigger_rules.py, rules/triggers.py, docs/rules.md).

-- One row per rule, one column per field of the rule's JSON shape (the body of POST
-- /api/v1/rules/triggers). The rules stage loads every active rule at once and evaluates in memory, so
-- nothing here is queried by condition. Firings (rule_firings) refer to rules by id WITHOUT a foreign key:
-- they are history and outlive a deleted rule.
CREATE TABLE rules.trigger_rules (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                  text NOT NULL CHECK (name <> ''),
    description           text NOT NULL DEFAULT '',
    conditions            jsonb NOT NULL CHECK (jsonb_typeof(conditions) = 'object'),
    time_window_minutes   integer CHECK (time_window_minutes >= 1),
    threshold             integer NOT NULL DEFAULT 1 CHECK (threshold >= 1),
    group_by              text[] NOT NULL DEFAULT '{}',
    max_triggers_per_hour integer CHECK (max_triggers_per_hour >= 1),
    cooldown_minutes      integer NOT NULL DEFAULT 0 CHECK (cooldown_minutes >= 0),
    absence               jsonb CHECK (absence IS NULL OR jsonb_typeof(absence) = 'object'),
    active                boolean NOT NULL DEFAULT true,
    created_by            text NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    version               integer NOT NULL DEFAULT 1
);

-- The stage's reload and the API's `active` filter.
CREATE INDEX trigger_rules_active_idx ON rules.trigger_rules (active, id);

-- One row: moved in the transaction of every change to trigger_rules, so any replica learns that its copy
-- of the rules is stale with one primary-key read (a deletion leaves no updated_at behind to compare).
CREATE TABLE rules.trigger_rule_changes (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    generation bigint NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO rules.trigger_rule_changes (generation) VALUES (0);
