"""Where a training step's time goes: the real Trainer's train_step on the real corpus's
batches (their lengths vary, as in training), timed on the host and on the device, then
torch.profiler's busiest operators. Not a test: run it by hand, on an idle machine.

    python scripts/profile_step.py +experiment=transformer data.root=DATA

Host time far above device time means the accelerator waits on Python and kernel launches
(or, as once with cuDNN's attention, on per-shape planning); the table says which.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from mt.config.store import register_configs, to_config
from mt.data.batches import make_batch, train_batches
from mt.training.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
WARM_UP, TIMED, PROFILED = 10, 40, 10


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (nothing to wait for on a CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    register_configs()
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base=None):
        config = to_config(compose("config", overrides=sys.argv[1:]))
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(config, Path(run_dir))
        d, device = config.data, trainer.device
        split = trainer.corpus.train
        chosen = train_batches(split, d.max_tokens, d.max_len, 1, 0, d.max_length_ratio)
        pin = device.type == "cuda"
        start = time.perf_counter()
        updates = [[make_batch(split, indices)] for indices in chosen[: WARM_UP + TIMED + PROFILED]]
        padding = (time.perf_counter() - start) / len(updates)
        updates = [[b.pin_memory() if pin else b for b in u] for u in updates]
        print(f"padding: {1000 * padding:.2f} ms/update on the host")
        for update in updates[:WARM_UP]:
            trainer.train_step(update)
        sync(device)
        start = time.perf_counter()
        for update in updates[WARM_UP : WARM_UP + TIMED]:
            trainer.train_step(update)
        host = time.perf_counter() - start
        sync(device)
        total = time.perf_counter() - start
        print(
            f"{device}: host {1000 * host / TIMED:.1f} ms/step, "
            f"with the device's queue drained {1000 * total / TIMED:.1f} ms/step"
        )
        activities = [torch.profiler.ProfilerActivity.CPU]
        if device.type == "cuda":
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        with torch.profiler.profile(activities=activities) as profile:
            for update in updates[WARM_UP + TIMED :]:
                trainer.train_step(update)
            sync(device)
        print(profile.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
