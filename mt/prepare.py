"""`python -m mt.prepare [data.*]`: read, tokenise, encode and cache a corpus once, then say
what it holds and what training will drop. mt.train does the same when it finds no cache;
run this first for a large corpus, or before torchrun, with the same data settings."""

from __future__ import annotations

import time

import datasets
import hydra
import numpy as np
from omegaconf import DictConfig

from mt.common.errors import reported
from mt.config.checks import check_data
from mt.config.schema import DataConfig
from mt.config.store import config_dir, register_configs, to_object
from mt.config.tools import PrepareConfig
from mt.data.batches import dropped_by
from mt.data.corpus import Corpus, cache_path, load_corpus
from mt.data.directions import source_marks

register_configs()


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


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="prepare")
def main(cfg: DictConfig) -> None:
    with reported():
        config: PrepareConfig = to_object(cfg)
        check_data(config.data)
        directory = cache_path(config.data)
        datasets.enable_progress_bars()  # encoding a large corpus takes a while: show it
        start = time.monotonic()
        corpus = load_corpus(config.data)
        how = corpus.origin
        if how != "found":  # rebuilt: the cache was damaged (named in a warning above)
            how += f" in {time.monotonic() - start:.1f} s"
        print(f"cache: {directory} ({how})")
        print("\n".join(describe(corpus, config.data)))


if __name__ == "__main__":
    main()
