"""The autonomous response side (port 3011): decide what to do about an event and how risky it is
(analysis/), run the chosen actions safely (executor/) through runners (runners/: scripts, HTTP calls,
notifications in notify/), and record everything in the ``autonomous`` schema. docs/response.md."""
