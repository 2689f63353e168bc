#!/usr/bin/env python3
"""check_disk_usage: how full the file system holding a path is (like df).

Prints {"path", "used_percent", "free_bytes", "used_bytes", "total_bytes", "inodes_used_percent",
"metrics": {...}}. used_percent counts the space reserved for root as unavailable, as df does.
"""

from __future__ import annotations

import os

from _opsr import emit, fail, parser


def main() -> None:
    arguments = parser(__doc__ or "")
    arguments.add_argument("--path", required=True)
    args = arguments.parse_args()
    try:
        fs = os.statvfs(args.path)
    except OSError as e:
        fail(f"cannot read {args.path}: {e.strerror}", path=args.path)
    used = (fs.f_blocks - fs.f_bfree) * fs.f_frsize
    free = fs.f_bavail * fs.f_frsize
    total = fs.f_blocks * fs.f_frsize
    used_percent = round(100.0 * used / (used + free), 1) if used + free else 0.0
    inodes_used = fs.f_files - fs.f_ffree
    inodes_percent = round(100.0 * inodes_used / fs.f_files, 1) if fs.f_files else 0.0
    metrics = {
        "used_percent": used_percent,
        "free_bytes": free,
        "used_bytes": used,
        "total_bytes": total,
        "inodes_used_percent": inodes_percent,
    }
    emit({"path": args.path, **metrics, "metrics": metrics})


if __name__ == "__main__":
    main()
