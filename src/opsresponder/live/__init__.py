"""Committed events, live: the publisher (after each commit, onto the state backend's pub/sub channel),
its wire format, and the stream hub that fans the channel out to this process's SSE clients.

Not HTTP: `api.stream` serves the hub's clients over SSE. Depends on `state`, `store` (the backlog of
resuming clients), `rules` (their filters) and `core`.
"""
