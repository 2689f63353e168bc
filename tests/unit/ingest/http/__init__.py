"""Tests of the HTTP ingest adapters; shared sample helpers live here."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

SAMPLES = Path(__file__).parent / "samples"
RECEIVED_AT = datetime(2024, 12, 20, 11, 0, tzinfo=UTC)


def sample(name: str) -> bytes:
    """The bytes of a sample payload in ``samples/``."""
    return (SAMPLES / name).read_bytes()
