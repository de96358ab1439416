"""Launched by test_distributed.py under torchrun: one training step on this rank's share of
the first batches, then the weights to OUT/rank{N}.pt and the names of the threads still alive
after leaving the group to OUT/rank{N}.threads; with `fail`, rank 1 dies instead."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch
from helpers import make_config

from mt.data.batches import make_batch, train_batches
from mt.training import distributed
from mt.training.trainer import Trainer


def main(mode: str, root: str, cache: str, out: str) -> None:
    config = make_config(Path(root), "tiny", Path(cache), "data.max_tokens=128")
    trainer = Trainer(config, Path(out) / "run")
    if mode == "fail" and distributed.rank() == 1:
        raise RuntimeError("rank 1 fails on purpose")
    data, train = config.data, trainer.corpus.train
    batches = train_batches(train, data.max_tokens, data.max_len, config.trainer.seed, 0)
    trainer.train_step([make_batch(train, distributed.shard(batches)[0])])
    rank = distributed.rank()
    torch.save(trainer.model.state_dict(), Path(out) / f"rank{rank}.pt")
    del trainer  # as mt.training.trainer.train does: the DDP model goes before the group
    distributed.shutdown()
    # A stopped thread may take a moment to be joined: look for up to 5 s, long before the
    # interpreter's teardown, which is what the test rules out.
    for _ in range(50):
        threads = thread_names()
        if not any("gloo" in name for name in threads):
            break
        time.sleep(0.1)
    (Path(out) / f"rank{rank}.threads").write_text("\n".join(threads))


def thread_names() -> list[str]:
    tasks = Path("/proc/self/task")
    return [(tasks / task / "comm").read_text().strip() for task in os.listdir(tasks)]


if __name__ == "__main__":
    main(*sys.argv[1:])
