#!/usr/bin/env python3
"""quarantine_temp_files: move files older than N days out of a directory, reversibly.

Instead of deleting, each regular file under ``path`` last modified more than ``older_than_days`` ago
is moved to quarantine/<execution id>/files/<its path relative to path> under the working directory,
and a line is appended to quarantine/<execution id>/manifest.jsonl before the move (so the rollback,
restore_quarantined_files, knows about every file even if this run is killed mid-way). Symbolic links
are neither followed nor moved, other file systems mounted below ``path`` are not entered, and at most
``max_files`` files move. dry_run lists without moving.
Prints {"path", "moved_count", "moved_bytes", "moved" (the first 100), "manifest", "metrics": {...}}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import time
from pathlib import Path
from typing import Any

from _opsr import boolean, emit, execution_key, fail, parser, state_directory

STATE_NAME = "quarantine"
# The answer lists this many moved files (the manifest has them all): the runner's output is bounded.
LISTED = 100


def quarantine_directory() -> Path:
    directory = state_directory(STATE_NAME) / execution_key()
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def old_files(root: Path, cutoff: float, exclude: Path) -> Any:
    """(path, size, mtime) of the regular files under `root` older than `cutoff`, on `root`'s device."""
    device = root.stat().st_dev
    for directory, subdirectories, files in os.walk(root, followlinks=False):
        here = Path(directory)
        # Pruned in place: os.walk then does not descend into them.
        subdirectories[:] = [
            name for name in subdirectories if (here / name) != exclude and _same_device(here / name, device)
        ]
        for name in sorted(files):
            path = here / name
            try:
                info = path.lstat()
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode) and info.st_mtime < cutoff:
                yield path, info.st_size, info.st_mtime


def _same_device(path: Path, device: int) -> bool:
    try:
        info = path.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_dev == device


def parse_arguments(description: str) -> argparse.Namespace:
    """The parameters of quarantine_temp_files, which its rollback receives too."""
    arguments = parser(description)
    arguments.add_argument("--path", required=True)
    arguments.add_argument("--older_than_days", type=int, default=7)
    arguments.add_argument("--max_files", type=int, default=10000)
    arguments.add_argument("--dry_run", type=boolean, default=False)
    return arguments.parse_args()


def main() -> None:
    args = parse_arguments(__doc__ or "")
    root = Path(args.path)
    if not root.is_absolute() or root.resolve() == Path("/"):
        fail("path must be an absolute directory other than /", 2, path=args.path)
    if not root.is_dir() or root.is_symlink():
        fail(f"{root} is not a directory", 1, path=args.path)
    if args.older_than_days < 0 or args.max_files < 1:
        fail("older_than_days must be >= 0 and max_files >= 1", 2)
    root = root.resolve()
    quarantine_root = (Path.cwd() / STATE_NAME).resolve()
    if root == quarantine_root or quarantine_root in root.parents:
        fail(f"{root} is inside the quarantine itself", 2, path=args.path)
    quarantine = quarantine_directory()
    cutoff = time.time() - args.older_than_days * 86400
    manifest = quarantine / "manifest.jsonl"
    moved: list[dict[str, Any]] = []
    moved_bytes = 0
    failed: list[dict[str, str]] = []
    with manifest.open("a", encoding="utf-8") as log:
        for path, size, mtime in old_files(root, cutoff, quarantine_root):
            if len(moved) >= args.max_files:
                break
            target = quarantine / "files" / path.relative_to(root)
            entry = {"original": str(path), "quarantined": str(target), "size": size, "mtime": mtime}
            if not args.dry_run:
                log.write(json.dumps(entry) + "\n")
                log.flush()
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(str(path), str(target))  # a rename, or copy and delete across devices
                except OSError as e:
                    failed.append({"original": str(path), "error": e.strerror or str(e)})
                    continue
            moved.append(entry)
            moved_bytes += size
    emit(
        {
            "path": str(root),
            "dry_run": args.dry_run,
            "older_than_days": args.older_than_days,
            "moved_count": len(moved),
            "moved_bytes": moved_bytes,
            "moved": moved[:LISTED],
            "failed": failed[:LISTED],
            "manifest": None if args.dry_run else str(manifest),
            "metrics": {"moved_count": len(moved), "moved_bytes": moved_bytes, "failed": len(failed)},
        },
        1 if failed else 0,
    )


if __name__ == "__main__":
    main()
