"""Token-based batches: the pairs an epoch sees (each training corpus by its weight), grouped
by length under a token budget, and padded into tensors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch

from mt.common.special_ids import BOS_ID, EOS_ID, PAD_ID

if TYPE_CHECKING:  # types only: decoding batches without the corpus's machinery (datasets)
    from mt.data.concat import JoinedSplit
    from mt.data.corpus import MappedSplit, Split

# How many (source, target) lengths fixed-shape batches may take: each is one compiled graph
# (and one batch size), and 32 kept padding efficiency above 0.9 on Multi30k and on a
# WMT-like million pairs (docs/performance.md).
MOST_SHAPES = 32


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


def fixed_length(lengths: np.ndarray, longest: int) -> np.ndarray:
    """Lengths rounded up onto the grid fixed shapes are chosen from: multiples of 2 up to
    32, of 4 up to 64, of 8 beyond, never past longest (data.max_len, which the model's
    positions hold). Multi30k's sentences are short (about 16 pieces), so a coarser grid
    would waste a tenth of them in padding before any merging."""
    step = np.where(lengths > 64, 8, np.where(lengths > 32, 4, 2))
    return np.minimum(-(-lengths // step) * step, np.maximum(lengths, longest))


class FixedBatch(NamedTuple):
    """A batch's pair indices and the (source, target) lengths its tensors are padded to."""

    indices: np.ndarray
    lengths: tuple[int, int]


def dominating(keys: np.ndarray) -> np.ndarray:
    """(K, K) mask: row k marks the other keys at least as long as keys[k] on both sides."""
    mask = (keys[None, :, 0] >= keys[:, None, 0]) & (keys[None, :, 1] >= keys[:, None, 1])
    np.fill_diagonal(mask, False)
    return mask


def nearest_above(keys: np.ndarray, alive: np.ndarray) -> np.ndarray:
    """Per key, the alive key dominating it with the fewest slots a pair (source + target
    length), or -1 where none does."""
    slots = keys.sum(1)
    candidates = dominating(keys) & alive[None, :]
    cost = np.where(candidates, slots[None, :], np.iinfo(np.int64).max)
    return np.where(candidates.any(1), cost.argmin(1), -1)


def merged_keys(keys: np.ndarray, counts: np.ndarray, most: int) -> np.ndarray:
    """Per key, the key its pairs are padded to once at most `most` keys are left: the one
    merge that adds the fewest padded slots, repeated (a key merges into its nearest
    dominating key, so every pair still fits)."""
    counts, alive, into = counts.astype(np.int64), np.ones(len(keys), bool), np.arange(len(keys))
    slots = keys.sum(1)
    while alive.sum() > most:
        above = nearest_above(keys, alive)
        cost = np.where(alive & (above >= 0), counts * (slots[above] - slots), np.inf)
        k = int(np.argmin(cost))
        if not np.isfinite(cost[k]):  # only keys no other key dominates are left
            break
        counts[above[k]] += counts[k]
        alive[k], into[into == k] = False, above[k]
    return into


def fixed_shape_batches(
    src_lens: np.ndarray,
    tgt_lens: np.ndarray,
    max_tokens: int,
    rng: np.random.Generator,
    *,
    longest: int,
    most: int = MOST_SHAPES,
) -> list[FixedBatch]:
    """Batches of a few fixed shapes, for compiled steps and CUDA graphs. Each pair's lengths
    round up onto the grid (fixed_length); the rarest of those keys merge into longer ones
    until `most` are left (merged_keys). Each key is cut into batches of as many pairs as
    max_tokens allows at its longer side, its remainder joining the nearest longer key, so
    only keys without a longer one end in a smaller batch."""
    src_fixed, tgt_fixed = fixed_length(src_lens, longest), fixed_length(tgt_lens, longest)
    width = int(tgt_fixed.max(initial=0)) + 1  # one code per pair of lengths: a 1-d unique
    codes, key_of, counts = np.unique(
        src_fixed * width + tgt_fixed, return_inverse=True, return_counts=True
    )
    keys = np.stack([codes // width, codes % width], axis=1)
    key_of = merged_keys(keys, counts, most)[key_of]
    live = np.unique(key_of)
    above = nearest_above(keys, np.isin(np.arange(len(keys)), live))
    members = {k: [np.flatnonzero(key_of == k)] for k in live}
    batches = []
    for k in sorted(live, key=lambda k: (keys[k].sum(), keys[k][1])):  # shorter keys first
        size = max(1, max_tokens // int(keys[k].max()))
        pairs = rng.permutation(np.concatenate(members[k]))
        cut = len(pairs) - len(pairs) % size if above[k] >= 0 else len(pairs)
        lengths = (int(keys[k][0]), int(keys[k][1]))
        batches += [FixedBatch(pairs[i : i + size], lengths) for i in range(0, cut, size)]
        if cut < len(pairs):
            members[above[k]].append(pairs[cut:])
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
    split: Split | MappedSplit | JoinedSplit,
    max_tokens: int,
    max_len: int,
    seed: int,
    epoch: int,
    max_ratio: float | None = None,
    weights: list[float] | None = None,
    src_marks: int = 0,
    fixed_shapes: bool = False,
) -> list[np.ndarray] | list[FixedBatch]:
    """This epoch's training batches: filtered pairs dropped (dropped_by), each corpus
    sampled by its weight (data.train_sources; a MappedSplit's), shuffled by seed+epoch;
    of a few fixed shapes when asked (fixed_shape_batches)."""
    from mt.data.concat import JoinedSplit  # noqa: F811 (training's alone: decoding skips it)

    src_lens, tgt_lens = split.src_lengths(), split.tgt_lengths()
    dropped = np.logical_or.reduce(list(dropped_by(split, max_len, max_ratio, src_marks).values()))
    if isinstance(split, JoinedSplit):  # joined to an earlier pair this epoch
        dropped |= split.counts < 0
    rng = np.random.default_rng([seed, epoch])
    pairs = np.arange(len(split)) if weights is None else epoch_pairs(split.sources, weights, rng)
    keep = pairs[~dropped[pairs]]
    if fixed_shapes:
        batches = fixed_shape_batches(
            src_lens[keep], tgt_lens[keep], max_tokens, rng, longest=max_len
        )
        return [FixedBatch(keep[b.indices], b.lengths) for b in batches]
    return [keep[b] for b in token_batches(src_lens[keep], tgt_lens[keep], max_tokens, rng)]


def padded(
    rows: list[np.ndarray],
    before: int | None = None,
    after: int | None = None,
    length: int | None = None,
):
    """(B, length) long tensor of the rows, each with an optional id before and after;
    length defaults to the longest row's."""
    extra = (before is not None) + (after is not None)
    if length is None:
        length = max(len(r) for r in rows) + extra
    out = np.full((len(rows), length), PAD_ID, dtype=np.int64)
    for k, row in enumerate(rows):
        start = 0 if before is None else 1
        if before is not None:
            out[k, 0] = before
        out[k, start : start + len(row)] = row
        if after is not None:
            out[k, start + len(row)] = after
    return torch.from_numpy(out)


def make_batch(split: Split | MappedSplit, batch: np.ndarray | FixedBatch) -> Batch:
    """Pad a batch's sentences into tensors (on the CPU): a FixedBatch to its lengths, index
    arrays to their longest sentences."""
    indices, (src_len, tgt_len) = batch if isinstance(batch, FixedBatch) else (batch, (None, None))
    src, tgt = split.pair_ids(indices)
    return Batch(
        src=padded(src, length=src_len),
        tgt_in=padded(tgt, before=BOS_ID, length=tgt_len),
        tgt_out=padded(tgt, after=EOS_ID, length=tgt_len),
        num_tgt_tokens=sum(len(t) + 1 for t in tgt),
    )
