"""What users write to select events: filters today, the rules' condition language next.

Each compiles to two forms that must agree on every event: ``matches(event)`` in Python (live stream,
subscription outbox, rule evaluation in the pipeline) and a SQL ``WHERE`` fragment (event list, stream
backlog). Depends on `core` only, so `pipeline`, `store`, `api` and `response` can all use it.
"""
