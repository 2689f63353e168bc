-- Correlations, one row per correlated event instead of one per (event, related event, kind)
-- (store/correlations.py, docs/correlation.md).
--
-- An event of the realistic mix has 2.8 correlations. As rows of their own, each with four index entries,
-- they were a sixth of the machine's whole cost per ingested event (bench/pipeline.py: ingest without
-- writing them ran 15 to 25 us of CPU per event cheaper, server and PostgreSQL together). Here an event's
-- correlations are parallel arrays in one row: one heap tuple and two index entries per event, and no row
-- at all for an event that opened a group of its own.
--
-- - related, kinds, scores, reasons: the i-th correlation of the event is (related[i], kinds[i],
--   scores[i], reasons[i]), in the order the stage found them (best first within a kind).
-- - correlation_id: the group of the event, which is the group of every related event (an event is only
--   correlated with events of the group it joins). GET /api/v1/events/{id}/correlations reads both
--   directions: the event's own row by its id, and the later events that named it, among the rows of its
--   group, through this index.
-- - No foreign key, no index on created_at: retention deletes an event's row in the same statement as the
--   event, as it does its trace (store/retention.py, EVENT_DEPENDENTS).
CREATE TABLE events.event_correlations (
    event_id       bigint PRIMARY KEY,
    correlation_id uuid NOT NULL,
    related        bigint[] NOT NULL,
    kinds          text[] NOT NULL
        CHECK (kinds <@ ARRAY['time_based', 'host_based', 'pattern_based', 'causal']::text[]),
    scores         real[] NOT NULL CHECK (0 <= ALL (scores) AND 1 >= ALL (scores)),
    reasons        text[] NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (cardinality(related) > 0
           AND cardinality(kinds) = cardinality(related)
           AND cardinality(scores) = cardinality(related)
           AND cardinality(reasons) = cardinality(related))
);
CREATE INDEX event_correlations_group_idx ON events.event_correlations (correlation_id);

-- What the old table holds, folded per event in its order (best first as written).
INSERT INTO events.event_correlations
    (event_id, correlation_id, related, kinds, scores, reasons, created_at)
SELECT event_id,
       (array_agg(correlation_id ORDER BY id))[1],
       array_agg(related_event_id ORDER BY id),
       array_agg(correlation_type ORDER BY id),
       array_agg(score ORDER BY id),
       array_agg(reason ORDER BY id),
       min(created_at)
FROM events.correlations
GROUP BY event_id;

DROP TABLE events.correlations;
