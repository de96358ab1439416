"""Concatenation augmentation (Nguyen et al., 2021, "Data Augmentation by Concatenation for
Low-Resource Translation"): in each epoch, a training pair starts with probability
data.concat_prob an example of itself and up to data.concat_max - 1 pairs that follow it in
the corpus (of its own corpus or direction), joined as one source and one target, never past
data.max_len. Multi30k's models never saw two sentences in one input and drop most of a
paragraph given as one (docs/documents.md); joined examples teach them longer inputs.

The joins are drawn from the seed and the epoch alone, so a resumed run sees the same
examples. Joining works on subword ids: a source keeps its first pair's direction tag and its
last pair's EOS; the pairs joined to an earlier one are not batched on their own that epoch.
"""

from __future__ import annotations

import numpy as np

from mt.data.corpus import MappedSplit, Split


def joins(
    src_lens: np.ndarray,
    tgt_lens: np.ndarray,
    sources: np.ndarray | None,
    concat: tuple[float, int, int],
    rng: np.random.Generator,
    src_marks: int = 0,
) -> np.ndarray:
    """Per pair: how many following pairs it is joined with this epoch (0: alone), or -1 for
    a pair joined to an earlier one. concat is (concat_prob, concat_max, max_len)."""
    prob, most, max_len = concat
    n = len(src_lens)
    counts = np.zeros(n, dtype=np.int64)
    starts = np.flatnonzero(rng.random(n) < prob)
    sizes = rng.integers(2, most + 1, n)
    corpus = np.zeros(n, dtype=np.int64) if sources is None else sources
    free_from = 0  # the first pair not yet in an example
    for i in starts:
        if i < free_from or src_lens[i] > max_len or tgt_lens[i] > max_len:
            continue
        src, tgt, k = src_lens[i], tgt_lens[i], 1
        while k < sizes[i] and i + k < n and corpus[i + k] == corpus[i]:
            # The next pair's source loses its tag and the previous EOS goes; one BOS/EOS.
            src_next = src + src_lens[i + k] - 1 - src_marks
            tgt_next = tgt + tgt_lens[i + k] - 1
            if src_next > max_len or tgt_next > max_len:
                break
            src, tgt, k = src_next, tgt_next, k + 1
        counts[i], counts[i + 1 : i + k] = k - 1, -1
        free_from = i + k
    return counts


class JoinedSplit:
    """A training split as one epoch's examples: pair i stands for itself and the counts[i]
    pairs after it; lengths and ids are the joined example's."""

    def __init__(self, split: Split | MappedSplit, counts: np.ndarray, src_marks: int):
        self.split, self.counts, self.marks = split, counts, src_marks
        self.sources = split.sources
        src, tgt = split.src_lengths().copy(), split.tgt_lengths().copy()
        for i in np.flatnonzero(counts > 0):
            tail = slice(i + 1, i + 1 + counts[i])
            src[i] += int(src[tail].sum()) - counts[i] * (1 + src_marks)
            tgt[i] += int(tgt[tail].sum()) - counts[i]
        self.src_lens, self.tgt_lens = src, tgt

    def __len__(self) -> int:
        return len(self.split)

    def src_lengths(self) -> np.ndarray:
        return self.src_lens

    def tgt_lengths(self) -> np.ndarray:
        return self.tgt_lens

    def pair_ids(self, indices: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Each chosen example's source and target ids, its pairs' joined."""
        spans = [np.arange(i, i + max(self.counts[i], 0) + 1) for i in indices]
        src, tgt = self.split.pair_ids(np.concatenate(spans))
        joined_src, joined_tgt, k = [], [], 0
        for span in spans:
            parts, k = src[k : k + len(span)], k + len(span)
            # The first pair's tag, every pair's text, the last pair's EOS.
            pieces = [parts[0][:-1], *(p[self.marks : -1] for p in parts[1:]), parts[-1][-1:]]
            joined_src.append(np.concatenate(pieces))
            joined_tgt.append(np.concatenate(tgt[k - len(span) : k]))
        return joined_src, joined_tgt


def joined_split(
    split: Split | MappedSplit, concat: tuple[float, int, int], seed: int, epoch: int, marks: int
) -> Split | MappedSplit | JoinedSplit:
    """The split as this epoch's examples (the split itself when concat's probability is 0)."""
    if concat[0] == 0:
        return split
    rng = np.random.default_rng([seed, epoch, 1])  # apart from the batches' own stream
    src, tgt = split.src_lengths(), split.tgt_lengths()
    return JoinedSplit(split, joins(src, tgt, split.sources, concat, rng, marks), marks)
