-- Message templates of event titles (pipeline/patterns/, store/patterns.py, docs/patterns.md).

-- One row per template id (a hash of the template text, so the same text has one row whichever replica
-- saw it). count: every occurrence, duplicates folded into an existing event included. Times are the
-- events' received_at (the server's clock), so "new today" does not depend on senders' clocks.
CREATE TABLE events.patterns (
    id          text PRIMARY KEY,
    template    text NOT NULL,
    count       bigint NOT NULL CHECK (count > 0),
    first_seen  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL
);

-- GET /api/v1/patterns sorts by each of these; since= filters on first_seen.
CREATE INDEX patterns_last_seen_idx ON events.patterns (last_seen DESC, id);
CREATE INDEX patterns_first_seen_idx ON events.patterns (first_seen DESC, id);
CREATE INDEX patterns_count_idx ON events.patterns (count DESC, id);

-- GET /api/v1/events?pattern=<id>: the event list filters on this expression (rules/filter.py).
CREATE INDEX events_pattern_idx ON events.events ((metadata -> 'pattern' ->> 'id'), occurred_at DESC);

-- Subscriptions filter on the template id too, like the event list (rules/filter.py EventFilter.pattern).
ALTER TABLE events.subscriptions ADD COLUMN pattern text;
