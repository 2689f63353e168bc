#!/usr/bin/env python3
"""restore_quarantined_files: the rollback of quarantine_temp_files; moves the files back.

Reads quarantine/<execution id>/manifest.jsonl under the working directory and moves each quarantined
file under ``path`` back to where it was. A file whose original place is taken again is left in
quarantine (``conflicts``); one no longer in quarantine is reported as ``missing``. Entries that were
not restored stay in the manifest, so running it again retries only those.
Accepts quarantine_temp_files' parameters (a rollback gets the same ones).
Prints {"restored_count", "restored" (the first 100), "conflicts", "missing", "metrics": {...}}.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from _opsr import emit, execution_key, state_directory
from quarantine_temp_files import STATE_NAME, parse_arguments

LISTED = 100


def main() -> None:
    args = parse_arguments(__doc__ or "")
    root = Path(args.path).resolve()
    manifest = state_directory(STATE_NAME) / execution_key() / "manifest.jsonl"
    entries: list[dict[str, Any]] = []
    if manifest.exists():
        entries = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines() if line]
    restored: list[dict[str, Any]] = []
    conflicts: list[str] = []
    missing: list[str] = []
    kept: list[dict[str, Any]] = []
    for entry in entries:
        original, quarantined = Path(entry["original"]), Path(entry["quarantined"])
        if root not in original.parents:
            kept.append(entry)  # another directory's quarantine: not this rollback's
            continue
        if not quarantined.exists():
            missing.append(str(original))
            continue
        if original.exists() or original.is_symlink():
            conflicts.append(str(original))
            kept.append(entry)
            continue
        if not args.dry_run:
            try:
                original.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(quarantined), str(original))
                os.utime(original, (entry["mtime"], entry["mtime"]))
            except OSError as e:
                conflicts.append(f"{original}: {e.strerror or e}")
                kept.append(entry)
                continue
        restored.append({"original": str(original), "size": entry["size"]})
    if not args.dry_run and manifest.exists():
        if kept:
            temporary = manifest.with_name("manifest.jsonl.tmp")
            temporary.write_text("".join(json.dumps(e) + "\n" for e in kept), encoding="utf-8")
            os.replace(temporary, manifest)
        else:
            manifest.unlink()
    emit(
        {
            "path": str(root),
            "dry_run": args.dry_run,
            "restored_count": len(restored),
            "restored": restored[:LISTED],
            "conflicts": conflicts[:LISTED],
            "missing": missing[:LISTED],
            "metrics": {
                "restored_count": len(restored),
                "conflicts": len(conflicts),
                "missing": len(missing),
            },
        },
        1 if conflicts else 0,
    )


if __name__ == "__main__":
    main()
