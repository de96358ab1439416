"""Feeding the training loop: each update's micro-batches padded ahead of time, in a worker
process when asked (data.loader_workers), into pinned memory when training on a GPU, so the
accelerator does not wait for the host."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mt.data.batches import Batch, FixedBatch, make_batch
from mt.data.corpus import MappedSplit, Split


class Updates(Dataset):
    """Update k of an epoch: the padded batches of its chunk of index arrays."""

    def __init__(self, split: Split | MappedSplit, chunks: list[list[np.ndarray | FixedBatch]]):
        self.split, self.chunks = split, chunks

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, k: int) -> list[Batch]:
        return [make_batch(self.split, batch) for batch in self.chunks[k]]


def updates(
    split: Split | MappedSplit,
    chunks: list[list[np.ndarray | FixedBatch]],
    workers: int,
    pin: bool,
) -> Iterable[list[Batch]]:
    """The epoch's updates in order, padded: built here
    (workers=0) or by worker processes ahead of the loop. A forked worker shares the
    memory-mapped split instead of copying it."""
    dataset = Updates(split, chunks)
    if workers == 0:
        return (dataset[k] for k in range(len(dataset)))
    # batch_size=None: each item is already an update; DataLoader only runs it elsewhere.
    # Its own generator seeds the workers, so the training's random state (dropout) is not
    # drawn from and stays the same with or without workers.
    return DataLoader(
        dataset,
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        pin_memory=pin,
        generator=torch.Generator(),
    )
