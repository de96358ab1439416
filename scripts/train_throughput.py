"""A run's training throughput on the wall clock, as peers report theirs: target tokens trained
between two log lines over the time between them, from the run's TensorBoard events
(train/target_tokens and each event's wall time). Data preparation, logging and any
checkpoint saves in between are counted; the first window (start-up) is left out.

    python scripts/train_throughput.py RUN_DIR
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def throughput(run_dir: Path) -> dict:
    """Steps, target tokens and target tokens per wall-clock second after the first window."""
    events = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0})
    events.Reload()
    if "train/target_tokens" not in events.Tags()["scalars"]:
        raise SystemExit(f"error: {run_dir / 'tb'} has no train/target_tokens curve")
    points = events.Scalars("train/target_tokens")
    if len(points) < 3:
        raise SystemExit(f"error: {run_dir / 'tb'}: {len(points)} log lines, 3 needed")
    first, last = points[1], points[-1]  # points[0] closes the start-up window
    seconds = last.wall_time - first.wall_time
    steps = last.step - first.step
    tokens = last.value - first.value
    return {
        "steps": steps,
        "seconds": round(seconds, 1),
        "target_tokens_per_step": round(tokens / steps, 1),
        "target_tokens_per_s": round(tokens / seconds, 1),
        "seconds_per_step": round(seconds / steps, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    print(json.dumps(throughput(parser.parse_args().run_dir), indent=2))


if __name__ == "__main__":
    main()
