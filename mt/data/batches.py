"""Token-based batches: the pairs an epoch sees (each training corpus by its weight), grouped
by length under a token budget, and padded into tensors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mt.common.special_ids import BOS_ID, EOS_ID, PAD_ID
from mt.data.corpus import MappedSplit, Split


@dataclass
class Batch:
    src: torch.Tensor  # (B, S) source ids, padded with PAD_ID
    tgt_in: torch.Tensor  # (B, T) BOS + target
    tgt_out: torch.Tensor  # (B, T) target + EOS
    num_tgt_tokens: int  # real (non-pad) tokens in tgt_out

    def pin_memory(self) -> Batch:
        """Page-locked copies (DataLoader calls this in its pinning thread)."""
        return Batch(
            self.src.pin_memory(),
            self.tgt_in.pin_memory(),
            self.tgt_out.pin_memory(),
            self.num_tgt_tokens,
        )

    def to(self, device: torch.device) -> Batch:
        # Pinned host memory lets the copy overlap with GPU work.
        pin = device.type == "cuda"

        def move(t: torch.Tensor) -> torch.Tensor:
            if pin and not t.is_pinned():
                t = t.pin_memory()
            return t.to(device, non_blocking=pin)

        return Batch(move(self.src), move(self.tgt_in), move(self.tgt_out), self.num_tgt_tokens)


def batch_ends(sizes: np.ndarray, max_tokens: int) -> list[int]:
    """Where each batch of the ordered sizes ends: a batch grows while its pair count times
    its longest pair stays within max_tokens (a single pair always fits)."""
    ends, start, count = [], 0, len(sizes)
    while start < count:
        # Every pair costs at least sizes[start], so the cut lies within this window.
        window = sizes[start : start + max_tokens // max(int(sizes[start]), 1) + 1]
        cost = np.maximum.accumulate(window) * np.arange(1, len(window) + 1)
        over = np.flatnonzero(cost[1:] > max_tokens)
        start += int(over[0]) + 1 if len(over) else len(window)
        ends.append(start)
    return ends


def token_batches(
    src_lens: np.ndarray, tgt_lens: np.ndarray, max_tokens: int, rng: np.random.Generator | None
) -> list[np.ndarray]:
    """Group sentence indices into batches of similar length, each at most max_tokens padded.

    With rng: ties in length are broken at random and the batch order is shuffled, so every
    epoch sees different batches. Without: a fixed order, sorted by length.
    """
    order = rng.permutation(len(src_lens)) if rng is not None else np.arange(len(src_lens))
    # lexsort is stable and sorts by its last key first: target length, then source length.
    order = order[np.lexsort((src_lens[order], tgt_lens[order]))]
    ends = batch_ends(np.maximum(src_lens, tgt_lens)[order], max_tokens)
    batches = np.split(order, ends[:-1])
    if rng is not None:
        rng.shuffle(batches)
    return batches


def fixed_length(lengths: np.ndarray) -> np.ndarray:
    """Lengths rounded up onto a few fixed values: multiples of 4 up to 32, of 8 up to 64, of
    16 beyond. Steps of 8 throughout would waste a fifth of Multi30k's short sentences (about
    16 pieces) in padding; these keep it under a tenth and still give few distinct lengths."""
    step = np.where(lengths > 64, 16, np.where(lengths > 32, 8, 4))
    return -(-lengths // step) * step


def fixed_shape_batches(
    src_lens: np.ndarray, tgt_lens: np.ndarray, max_tokens: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Batches of a few fixed shapes, for compiled steps and CUDA graphs: the pairs grouped by
    their fixed (source, target) lengths, each group cut into batches of as many pairs as
    max_tokens allows at its longer side (the group's last batch may hold fewer)."""
    src_fixed, tgt_fixed = fixed_length(src_lens), fixed_length(tgt_lens)
    order = rng.permutation(len(src_lens))
    order = order[np.lexsort((src_fixed[order], tgt_fixed[order]))]
    keys = np.stack([src_fixed[order], tgt_fixed[order]], axis=1)
    starts = np.flatnonzero(np.any(np.diff(keys, axis=0) != 0, axis=1)) + 1
    batches = []
    for group in np.split(order, starts):
        size = max(1, max_tokens // int(max(src_fixed[group[0]], tgt_fixed[group[0]])))
        batches += np.split(group, range(size, len(group), size))
    rng.shuffle(batches)
    return batches


def epoch_pairs(sources: np.ndarray, weights: list[float], rng: np.random.Generator) -> np.ndarray:
    """The training pairs one epoch sees: corpus k's pairs weights[k] times, as whole copies
    and then a random part (weight 2.5: every pair twice, half of them a third time); a
    weight too small for one pair still gives one, so no corpus drops out of an epoch."""
    picked = []
    for k, weight in enumerate(weights):
        pairs = np.flatnonzero(sources == k)
        copies, part = divmod(weight, 1)
        picked += [pairs] * int(copies)
        if part and len(pairs):
            count = min(max(round(part * len(pairs)), 1 - int(copies)), len(pairs))
            picked.append(np.sort(rng.choice(pairs, count, replace=False)))
    return np.concatenate(picked)


def dropped_by(
    split: Split | MappedSplit, max_len: int, max_ratio: float | None, src_marks: int = 0
) -> dict:
    """Per filter, a mask of the training pairs it drops (lengths count the end marker, and
    a source's src_marks pieces before its own: a multilingual run's target tag)."""
    src, tgt = split.src_lengths(), split.tgt_lengths()
    reasons = {
        "empty": (src <= 1 + src_marks) | (tgt <= 1),
        "too long": (src > max_len) | (tgt > max_len),
    }
    if max_ratio is not None:
        reasons["length ratio"] = np.maximum(src, tgt) > max_ratio * np.minimum(src, tgt)
    return reasons


def train_batches(
    split: Split | MappedSplit,
    max_tokens: int,
    max_len: int,
    seed: int,
    epoch: int,
    max_ratio: float | None = None,
    weights: list[float] | None = None,
    src_marks: int = 0,
    fixed_shapes: bool = False,
) -> list[np.ndarray]:
    """This epoch's training batches: filtered pairs dropped (dropped_by), each corpus
    sampled by its weight (data.train_sources; a MappedSplit's), shuffled by seed+epoch;
    of a few fixed shapes when asked (fixed_shape_batches)."""
    src_lens, tgt_lens = split.src_lengths(), split.tgt_lengths()
    dropped = np.logical_or.reduce(list(dropped_by(split, max_len, max_ratio, src_marks).values()))
    rng = np.random.default_rng([seed, epoch])
    pairs = np.arange(len(split)) if weights is None else epoch_pairs(split.sources, weights, rng)
    keep = pairs[~dropped[pairs]]
    batching = fixed_shape_batches if fixed_shapes else token_batches
    return [keep[b] for b in batching(src_lens[keep], tgt_lens[keep], max_tokens, rng)]


def padded(
    rows: list[np.ndarray],
    before: int | None = None,
    after: int | None = None,
    fixed: bool = False,
):
    """(B, longest) long tensor of the rows, each with an optional id before and after; with
    fixed, as long as fixed_length makes the longest."""
    extra = (before is not None) + (after is not None)
    length = max(len(r) for r in rows) + extra
    if fixed:
        length = int(fixed_length(np.array(length)))
    out = np.full((len(rows), length), PAD_ID, dtype=np.int64)
    for k, row in enumerate(rows):
        start = 0 if before is None else 1
        if before is not None:
            out[k, 0] = before
        out[k, start : start + len(row)] = row
        if after is not None:
            out[k, start + len(row)] = after
    return torch.from_numpy(out)


def make_batch(split: Split | MappedSplit, indices: np.ndarray, fixed: bool = False) -> Batch:
    """Pad the chosen sentences into tensors (on the CPU), to fixed lengths when asked."""
    src, tgt = split.pair_ids(indices)
    return Batch(
        src=padded(src, fixed=fixed),
        tgt_in=padded(tgt, before=BOS_ID, fixed=fixed),
        tgt_out=padded(tgt, after=EOS_ID, fixed=fixed),
        num_tgt_tokens=sum(len(t) + 1 for t in tgt),
    )
