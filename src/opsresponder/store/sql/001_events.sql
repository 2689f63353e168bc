-- Schemas of the three areas; tables of `rules` and `autonomous` arrive with their features.
CREATE SCHEMA IF NOT EXISTS events;
CREATE SCHEMA IF NOT EXISTS rules;
CREATE SCHEMA IF NOT EXISTS autonomous;

-- Each process takes ids in blocks of 256 (one nextval per block, see store/ids.py), so a batch of
-- events costs at most one round trip for ids. Ids grow but may leave gaps; order by them within a time.
CREATE SEQUENCE events.event_id_block_seq INCREMENT BY 256 MINVALUE 1 START WITH 1;

CREATE TABLE events.events (
    id                bigint PRIMARY KEY,
    source            text NOT NULL,
    source_type       text NOT NULL,
    event_type        text NOT NULL,
    severity          text NOT NULL CHECK (severity IN ('critical', 'high', 'medium', 'low', 'info')),
    state             text NOT NULL CHECK (state IN ('problem', 'resolved')),
    host              text,
    service           text,
    title             text NOT NULL,
    description       text,
    occurred_at       timestamptz NOT NULL,
    received_at       timestamptz NOT NULL,
    processed_at      timestamptz NOT NULL,
    last_seen_at      timestamptz NOT NULL,
    duplicate_count   integer NOT NULL DEFAULT 0,
    metadata          jsonb NOT NULL DEFAULT '{}'::jsonb,
    tags              text[] NOT NULL DEFAULT '{}',
    fingerprint       text NOT NULL,
    correlation_id    uuid NOT NULL,
    score             double precision,
    suppressed_reason text,
    raw               text
);

-- Every index costs each insert (on a small machine about a fifth of the write time each), so only the
-- selective filters get one: time order for every listing, host, event type and fingerprint (history of
-- one condition). Severity (five values) and service are filtered while walking the time index.
CREATE INDEX events_occurred_idx ON events.events (occurred_at DESC, id DESC);
CREATE INDEX events_host_idx ON events.events (host, occurred_at DESC);
CREATE INDEX events_event_type_idx ON events.events (event_type, occurred_at DESC);
CREATE INDEX events_fingerprint_idx ON events.events (fingerprint, occurred_at DESC);

-- The latest event per fingerprint. Dedup is one INSERT ... ON CONFLICT DO UPDATE against this table in
-- the batch's transaction: the row lock serialises concurrent writers (also across processes), so there
-- is no check-then-insert race. A new event replaces the row when the state changed or the window passed.
CREATE TABLE events.dedup (
    fingerprint    text PRIMARY KEY,
    state          text NOT NULL,
    event_id       bigint NOT NULL,
    correlation_id uuid NOT NULL,
    last_seen_at   timestamptz NOT NULL
);
CREATE INDEX dedup_last_seen_idx ON events.dedup (last_seen_at);
