"""A test step: records its start and end in a journal, sleeps, prints JSON, exits as told.

--name N --sleep S --exit C --journal PATH [--undo true] [--touch PATH] [--hang true] [--pid-file PATH]
"""

import argparse
import json
import os
import signal
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--name", default="step")
parser.add_argument("--sleep", type=float, default=0.0)
parser.add_argument("--exit", type=int, default=0)
parser.add_argument("--journal", default=None)
parser.add_argument("--undo", default="false")
parser.add_argument("--touch", default=None)
parser.add_argument("--hang", default="false")
parser.add_argument("--pid_file", default=None)
args = parser.parse_args()
label = ("undo " if args.undo == "true" else "") + args.name


def journal(what: str) -> None:
    if args.journal:
        with open(args.journal, "a", encoding="utf-8") as f:
            f.write(f"{label} {what} {os.environ.get('OPSR_EXECUTION_ID', '-')}\n")


journal("start")
if args.pid_file:
    with open(args.pid_file, "w", encoding="utf-8") as f:
        f.write(str(os.getpid()))
if args.hang == "true":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        time.sleep(1)
if args.touch:
    open(args.touch, "w").close()
time.sleep(args.sleep)
journal("end")
print(json.dumps({"name": label, "value": 7, "metrics": {"cpu_usage": 42.5}}))
sys.exit(args.exit)
