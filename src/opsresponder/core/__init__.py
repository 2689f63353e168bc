"""Shared types only: events, severities, errors, clock. Imports nothing else of ours."""
