-- Decision traces (store/traces.py, api/traces.py, docs/trace.md).

-- One row per stored event: what each pipeline stage decided about it, as the msgpack encoding of a list of
-- [stage, detail] pairs (written by the trace writer in the event's own transaction). bytea rather than
-- jsonb: PostgreSQL stores the bytes without parsing them, which keeps the trace's share of the write cost
-- small; the trace is only ever read whole, by event id, through the API.
-- No foreign key to events.events: its check on every insert (a trigger and a row lock per trace) cost
-- about 16 µs a row on the 2-core reference machine, five times the row itself. Retention deletes an
-- event's trace in the same statement as the event instead (store/retention.py, EVENT_DEPENDENTS), and a
-- trace is only ever written in its event's transaction, right after the event.
CREATE TABLE events.event_traces (
    event_id bigint PRIMARY KEY,
    entries  bytea NOT NULL
);
