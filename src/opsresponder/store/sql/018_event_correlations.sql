-- Correlations, one row per correlated event instead of one per (event, related event, kind)
-- (store/correlations.py, docs/correlation.md).
--
-- An event of the realistic mix has 2.8 correlations. As rows of their own, each with four index entries,
-- they were a sixth of the machine's whole cost per ingested event (bench/pipeline.py: ingest without
-- writing them ran 15 to 25 us of CPU per event cheaper, server and PostgreSQL together). Here an event's
-- correlations are parallel arrays in one row: one heap tuple and its index entries per event, and no row
-- at all for an event that opened a group of its own.
--
-- - related, kinds, scores, reasons: the i-th correlation of the event is (related[i], kinds[i],
--   scores[i], reasons[i]), in the order the stage found them (best first within a kind).
-- - GET /api/v1/events/{id}/correlations reads both directions: the event's own row by its id, and the
--   rows of later events naming it (a root cause's dependents) through the GIN index on `related`.
--   fastupdate off: with its pending list, the insert that overflows the list merges it, a 200 ms stall
--   of one batch every few thousand rows; without it an insert costs about 7 instead of 4 us of
--   PostgreSQL's CPU per row (2 us for a btree on the group, which would answer the reverse direction
--   only by reading every row of the event's group: 73 ms for a group of 300,000).
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

-- What the old table holds for events that still exist, folded per event in its order (best first as
-- written). Its retention ran on its own clock, so it may hold rows of events already deleted: those are
-- left behind, as nothing would ever delete them here.
INSERT INTO events.event_correlations
    (event_id, correlation_id, related, kinds, scores, reasons, created_at)
SELECT c.event_id,
       (array_agg(c.correlation_id ORDER BY c.id))[1],
       array_agg(c.related_event_id ORDER BY c.id),
       array_agg(c.correlation_type ORDER BY c.id),
       array_agg(c.score ORDER BY c.id),
       array_agg(c.reason ORDER BY c.id),
       min(c.created_at)
FROM events.correlations AS c
WHERE EXISTS (SELECT 1 FROM events.events AS e WHERE e.id = c.event_id)
GROUP BY c.event_id;

-- After the fold: one build of the index, not an insert per folded row.
CREATE INDEX event_correlations_related_idx ON events.event_correlations
    USING gin (related) WITH (fastupdate = off);

-- The old table is kept, no longer read: a replica still running the previous release during a rolling
-- upgrade writes its batches' correlations there (dropping it would make it refuse those batches), and its
-- retention rule (store/correlations.py, LEGACY_CORRELATIONS) empties it by age. A later migration drops it.
COMMENT ON TABLE events.correlations IS
    'Before migration 018 (one row per link); no longer read, emptied by retention; see events.event_correlations';
