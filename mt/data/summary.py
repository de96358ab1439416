"""A corpus in a few lines: pairs per split, what training drops and why, and the
vocabulary (mt.prepare)."""

from __future__ import annotations

import numpy as np

from mt.config.schema import DataConfig
from mt.data.batches import dropped_by
from mt.data.corpus import Corpus
from mt.data.directions import source_marks


def describe(corpus: Corpus, cfg: DataConfig) -> list[str]:
    """The corpus in a few lines: pairs per split, what training drops and why, vocabulary."""
    counts = corpus.counts
    train = corpus.train
    reasons = dropped_by(train, cfg.max_len, cfg.max_length_ratio, source_marks(cfg))
    kept = len(train) - int(np.logical_or.reduce(list(reasons.values())).sum())
    why = ", ".join(f"{int(mask.sum())} {reason}" for reason, mask in reasons.items())
    tokenizer = corpus.tokenizer
    vocabulary = (
        f"{tokenizer.src_vocab_size} pieces, joint"
        if tokenizer.joint
        else (f"{tokenizer.src_vocab_size} source / {tokenizer.tgt_vocab_size} target pieces")
    )
    return [
        f"read {counts['train_pairs_read']} training pairs; data.dedup={cfg.dedup} dropped "
        f"{counts['duplicates_dropped']} repeated ones",
        f"train: {len(train)} pairs; training keeps {kept} (drops {why}; "
        f"data.max_len={cfg.max_len}, data.max_length_ratio={cfg.max_length_ratio})",
        f"valid: {len(corpus.valid)} pairs | test: {len(corpus.test)} pairs",
        f"vocabulary: {vocabulary}",
    ]
