-- Correlations, one row per correlated event instead of one per (event, related event, kind)
-- (store/correlations.py, docs/correlation.md).
--
-- An event of the realistic mix has 2.8 correlations. As rows of their own, each with four index entries,
-- they were a sixth of the machine's whole cost per ingested event (bench/pipeline.py: ingest without
-- writing them ran 15 to 25 us of CPU per event cheaper, server and PostgreSQL together). Here an event's
-- correlations are in one row: one heap tuple and its index entries per event, and no row at all for an
-- event that opened a group of its own.
--
-- - related, links: the i-th correlation of the event is with event related[i], and links[i] is its
--   [kind, score, reason], in the order the stage found them (best first within a kind). jsonb rather
--   than an array per field: asyncpg encodes each array element apart, and four arrays cost the service
--   10-14 us per event where the ids' array and the JSON (encoded by msgspec) cost 4.
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
    links          jsonb NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (cardinality(related) > 0 AND jsonb_array_length(links) = cardinality(related))
);

-- What the old table holds for events that still exist, folded per event in its order (best first as
-- written). Its retention ran on its own clock, so it may hold rows of events already deleted: those are
-- left behind, as nothing would ever delete them here.
INSERT INTO events.event_correlations
    (event_id, correlation_id, related, links, created_at)
SELECT c.event_id,
       (array_agg(c.correlation_id ORDER BY c.id))[1],
       array_agg(c.related_event_id ORDER BY c.id),
       jsonb_agg(jsonb_build_array(c.correlation_type, c.score, c.reason) ORDER BY c.id),
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
