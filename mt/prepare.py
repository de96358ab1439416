"""`python -m mt.prepare [+experiment=NAME] [data.*]`: read, tokenise, encode and cache a
corpus once, then say what it holds and what training will drop. mt.train does the same when
it finds no cache; run this first for a large corpus, or before torchrun, with the same
experiment and data settings as the training. Writes only the cache (data.cache_dir).

Examples:
    python -m mt.prepare +experiment=transformer
    python -m mt.prepare +experiment=transformer_base data.root=/data data.name=wmt14
"""

from __future__ import annotations

import time

import datasets
import hydra
from omegaconf import DictConfig

from mt.common.errors import corpus_at, reported
from mt.config.store import config_dir, register_configs, to_config
from mt.data.corpus import cache_path, load_corpus
from mt.data.summary import describe

register_configs("prepare", __doc__, groups=True)


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="prepare")
def main(cfg: DictConfig) -> None:
    with reported(), corpus_at("data.root"):
        config = to_config(cfg)  # the training config: data.* is what is read
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
