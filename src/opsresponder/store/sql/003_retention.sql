-- Retention (store/retention.py, docs/retention.md) and the shared job schedule (store/scheduler.py).

-- An event's age is counted from received_at, our own clock, never from occurred_at: senders' clocks are
-- wrong often enough (a device booted in 1970, a replayed log, a timestamp without a year) that ageing by
-- occurred_at would delete a fresh event at once or keep a future-dated one forever. received_at only
-- grows, so this index is appended at its right edge (the cheapest kind of B-tree insert), and duplicates
-- never change it, so their updates of duplicate_count/last_seen_at stay HOT.
-- Built without CONCURRENTLY because a migration runs in one transaction: on an already large table this
-- blocks event writes while it builds; on a fresh install the table is empty.
CREATE INDEX events_received_idx ON events.events (received_at);

-- One row per periodic job, shared by every process: a run is claimed by one conditional UPDATE that moves
-- next_run_at a period ahead, so each period runs exactly once across processes; the lease keeps a slow
-- run from overlapping the next period's, and expires by itself if the process that held it died.
CREATE TABLE public.opsresponder_jobs (
    name             text PRIMARY KEY,
    next_run_at      timestamptz NOT NULL,
    lease_owner      uuid,
    lease_until      timestamptz,
    last_started_at  timestamptz,
    last_finished_at timestamptz,
    last_result      text CHECK (last_result IN ('ok', 'failed', 'cancelled')),
    last_error       text,
    runs             bigint NOT NULL DEFAULT 0,
    failures         bigint NOT NULL DEFAULT 0
);
