-- The learning window (store/learning.py `_WINDOW`), read each time an action's run is settled: its
-- newest runs, in the order of this index. The older indexes order by pattern or event type first, so
-- PostgreSQL read every run of the action and sorted them (time growing with its history), or walked
-- action_outcomes_finished_idx through every other action's newer runs.
CREATE INDEX action_outcomes_recent_idx
    ON autonomous.action_outcomes (template_id, action_key, finished_at, id);
