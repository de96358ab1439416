"""What a command's exit costs: processes that load what mt.train loads (torch, datasets, an
optimizer and with it torch's compiler) and end, with and without
mt.common.errors.exit_without_last_collection. Each child prints the time just before it
ends; the parent reads the clock when the child is gone. The two kinds take turns. Not a
test: run it on an idle machine.

    python scripts/bench_exit.py --runs 10
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone

import torch

from mt.common.runtime import describe_device, source_commit

CHILD = """
import time, datasets, torch
torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])  # imports torch._dynamo
if {quick}:
    from mt.common.errors import exit_without_last_collection
    exit_without_last_collection()
print(time.time(), flush=True)
"""


def exit_seconds(quick: bool) -> float:
    """Seconds from a child's last statement to its end, as this process sees it."""
    child = subprocess.run(
        [sys.executable, "-c", CHILD.format(quick=quick)], capture_output=True, text=True
    )
    gone = time.time()
    if child.returncode != 0:
        raise SystemExit(child.stderr)
    return gone - float(child.stdout.split()[-1])


def main() -> None:
    """Median exit time of each kind over --runs pairs, as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="children of each kind")
    args = parser.parse_args()
    times: dict[str, list[float]] = {"plain": [], "frozen": []}
    for _ in range(args.runs):
        times["plain"].append(exit_seconds(quick=False))
        times["frozen"].append(exit_seconds(quick=True))
    record = {
        "exit_seconds_median": {k: round(statistics.median(v), 3) for k, v in times.items()},
        "runs": args.runs,
        "machine": describe_device(torch.device("cpu")).split(",")[0],
        "commit": source_commit(),
        "date": datetime.now(timezone.utc).date().isoformat(),
    }
    print(json.dumps(record))


if __name__ == "__main__":
    main()
