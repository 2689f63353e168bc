-- Outbound event subscriptions (store/subscriptions.py, outbound/, docs/subscriptions.md).

-- One row per subscription: its definition (read by the outbox writer's cache on the ingest path) and its
-- delivery state (written by the delivery worker). Filters mirror GET /api/v1/events; NULL means "any".
CREATE TABLE events.subscriptions (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                 text NOT NULL UNIQUE,
    url                  text NOT NULL,
    severities           text[],
    event_type           text,
    host                 text,
    service              text,
    min_score            double precision,
    include_suppressed   boolean NOT NULL DEFAULT false,
    -- Stored as given: the HMAC needs the secret itself. It never leaves the database through the API.
    secret               text,
    batch_max_events     integer NOT NULL CHECK (batch_max_events BETWEEN 1 AND 1000),
    batch_max_delay_ms   integer NOT NULL CHECK (batch_max_delay_ms >= 0),
    max_attempts         integer NOT NULL CHECK (max_attempts >= 1),
    active               boolean NOT NULL DEFAULT true,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    delivered_count      bigint NOT NULL DEFAULT 0,
    failed_attempts      bigint NOT NULL DEFAULT 0,
    dead_count           bigint NOT NULL DEFAULT 0,
    consecutive_failures integer NOT NULL DEFAULT 0,
    -- While set and in the future, nothing is sent to this subscription: backoff is per endpoint, so a
    -- receiver that is down gets one request per backoff period, not one per waiting batch.
    retry_at             timestamptz,
    last_attempt_at      timestamptz,
    last_success_at      timestamptz,
    last_error           text,
    last_error_at        timestamptz
);

-- One row per (subscription, event) still to deliver ('pending') or given up on ('dead'). Rows are written
-- in the same transaction as the events they name, so a committed event can never miss its deliveries.
-- Delivered rows are deleted (the count lives on the subscription). No foreign keys: one to events.events
-- would make retention's deletes check this table, and one to subscriptions would let a concurrent
-- DELETE of a subscription fail an ingest batch; orphans are swept by the delivery worker instead.
CREATE TABLE events.subscription_outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscription_id bigint NOT NULL,
    event_id        bigint NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- When this row must be sent at the latest (created_at + the subscription's batch_max_delay_ms);
    -- after a failed attempt, the subscription's retry time.
    next_attempt_at timestamptz NOT NULL,
    -- When the row went dead: dead rows are kept for subscriptions.dead_letter_retention_days from then.
    dead_at         timestamptz,
    last_error      text
);

-- The claim walks one subscription's pending rows oldest first; dead rows stay out of that index.
CREATE INDEX subscription_outbox_pending_idx
    ON events.subscription_outbox (subscription_id, id) WHERE status = 'pending';
CREATE INDEX subscription_outbox_dead_idx
    ON events.subscription_outbox (subscription_id, dead_at) WHERE status = 'dead';
