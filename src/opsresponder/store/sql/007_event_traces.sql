-- Decision traces (store/traces.py, api/traces.py, docs/trace.md).

-- One row per stored event: what each pipeline stage decided about it, as the msgpack encoding of a list of
-- [stage, detail] pairs (written by the trace writer in the event's own transaction). bytea rather than
-- jsonb: PostgreSQL stores the bytes without parsing them, which keeps the trace's share of the write cost
-- small; the trace is only ever read whole, by event id, through the API.
-- ON DELETE CASCADE: retention deletes events (store/retention.py); their traces go with them, in the same
-- statement, through this table's primary key.
CREATE TABLE events.event_traces (
    event_id bigint PRIMARY KEY REFERENCES events.events (id) ON DELETE CASCADE,
    entries  bytea NOT NULL
);
