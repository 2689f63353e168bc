"""What users write to select events: filters (filter.py) and the rules' condition language (conditions/).

Each compiles to two forms that must agree on every event: ``matches(event)`` in Python (live stream,
subscription outbox, rule evaluation in the pipeline) and a SQL ``WHERE`` fragment (event list, stream
backlog, rule replay). Depends on `core` (and RE2) only, so `pipeline`, `store`, `api` and `response` can
all use it.
"""
