-- Correlations found by the correlate stage (pipeline/correlation/, store/correlations.py,
-- docs/correlation.md), written in the batch's transaction by CorrelationWriter.

-- One row per (event, related event, kind): the event of the batch that was correlated, the earlier (or
-- same-batch) event it was correlated with, the group both belong to, a score 0-1 and a reason a person
-- can read. No foreign keys: ids of an earlier batch may still be uncommitted when this row is written,
-- and retention removes rows by age as it removes events (retention.events_days).
CREATE TABLE events.correlations (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    correlation_id   uuid NOT NULL,
    event_id         bigint NOT NULL,
    related_event_id bigint NOT NULL,
    correlation_type text NOT NULL
        CHECK (correlation_type IN ('time_based', 'host_based', 'pattern_based', 'causal')),
    score            real NOT NULL CHECK (score >= 0 AND score <= 1),
    reason           text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);

-- GET /api/v1/events/{id}/correlations reads both directions: what an event was correlated with when it
-- came, and what later events were correlated with it (a root cause's dependents).
CREATE INDEX correlations_event_idx ON events.correlations (event_id);
CREATE INDEX correlations_related_idx ON events.correlations (related_event_id);
CREATE INDEX correlations_created_idx ON events.correlations (created_at);
