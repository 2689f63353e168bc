-- Silences, maintenance windows (store/silences.py, pipeline/noise/, docs/silences.md).

-- One row per silence. matchers and windows are JSON arrays in the shape of core/silence.py
-- (SilenceMatcher, RecurringWindow): the noise stage reads every current silence at once and matches in
-- memory, so nothing here is queried by matcher. ends_at NULL: open-ended.
CREATE TABLE events.silences (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    matchers    jsonb NOT NULL CHECK (jsonb_typeof(matchers) = 'array' AND jsonb_array_length(matchers) > 0),
    windows     jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(windows) = 'array'),
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz CHECK (ends_at > starts_at),
    created_by  text NOT NULL,
    comment     text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The noise stage's reload: the silences that have not ended.
CREATE INDEX silences_ends_idx ON events.silences (ends_at);
