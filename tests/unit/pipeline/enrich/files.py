"""Writing the inventory file from async tests (a plain function: the write is small and local)."""

from __future__ import annotations

from pathlib import Path


def rewrite(path: Path, text: str) -> None:
    path.write_text(text)
