"""The encoded corpus as training reads it: the memory-mapped training split, the held-out
splits in memory, and the tokenizer, from a cache built once (mt/data/cache.py).

The training split stays on disk (ids read per batch; lengths and corpus marks as numpy
arrays), so a corpus of millions of pairs costs little memory and every torchrun rank shares
the same pages. Batching is mt/data/batches.py.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from mt.common.files import remove_stale_temporaries
from mt.config.schema import DataConfig
from mt.data.cache import build_cache, cache_dir, fingerprint
from mt.data.tokenizer import Tokenizer

log = logging.getLogger("mt")


@dataclass
class Split:
    """A held-out split in memory: raw text for scoring, subword ids for the model."""

    src_text: list[str]
    tgt_text: list[str]
    src_ids: list[torch.Tensor]  # each ends in EOS
    tgt_ids: list[torch.Tensor]  # no BOS/EOS

    def __len__(self) -> int:
        return len(self.src_ids)

    def src_lengths(self) -> np.ndarray:
        return np.array([len(ids) for ids in self.src_ids], dtype=np.int64)

    def tgt_lengths(self) -> np.ndarray:
        """Target lengths counting the BOS (input) or EOS (output) token."""
        return np.array([len(ids) + 1 for ids in self.tgt_ids], dtype=np.int64)

    def pair_ids(self, indices: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The source and target ids of the chosen pairs."""
        return [self.src_ids[i].numpy() for i in indices], [
            self.tgt_ids[i].numpy() for i in indices
        ]


class MappedSplit:
    """The training split as it lies on disk: an Arrow table of ids, memory-mapped; only the
    lengths live in memory (no text, no per-sentence Python objects)."""

    def __init__(self, table: pa.Table):
        self.src_column, self.tgt_column = table.column("src_ids"), table.column("tgt_ids")
        self.src_lens = pc.list_value_length(self.src_column).to_numpy().astype(np.int64)
        self.tgt_lens = pc.list_value_length(self.tgt_column).to_numpy().astype(np.int64)
        self.sources = table.column("source").to_numpy()  # each pair's training corpus

    def __len__(self) -> int:
        return len(self.src_lens)

    def src_lengths(self) -> np.ndarray:
        return self.src_lens

    def tgt_lengths(self) -> np.ndarray:
        """Target lengths counting the BOS (input) or EOS (output) token."""
        return self.tgt_lens + 1

    def pair_ids(self, indices: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The source and target ids of the chosen pairs, read from the mapped table."""
        return rows(self.src_column, indices), rows(self.tgt_column, indices)


def rows(column: pa.ChunkedArray, indices: np.ndarray) -> list[np.ndarray]:
    """The chosen rows of a list<int> column as numpy arrays (one take, one copy)."""
    taken = column.take(pa.array(indices, type=pa.int64())).combine_chunks()
    values = taken.flatten().to_numpy(zero_copy_only=False)
    offsets = taken.offsets.to_numpy()
    return [values[offsets[k] : offsets[k + 1]] for k in range(len(taken))]


@dataclass
class Corpus:
    tokenizer: Tokenizer
    train: MappedSplit
    valid: Split
    test: Split


def load_split(path: Path) -> Split:
    """A held-out split, read whole into memory (they are small)."""
    columns = datasets.load_from_disk(str(path)).with_format("python").to_dict()
    return Split(
        src_text=columns["src"],
        tgt_text=columns["tgt"],
        src_ids=[torch.tensor(ids, dtype=torch.long) for ids in columns["src_ids"]],
        tgt_ids=[torch.tensor(ids, dtype=torch.long) for ids in columns["tgt_ids"]],
    )


def map_split(path: Path) -> MappedSplit:
    """The training split, memory-mapped from the cache."""
    return MappedSplit(datasets.load_from_disk(str(path)).data.table)


def cache_path(cfg: DataConfig) -> Path:
    """Where the corpus's cache lies (or will): named by the language pair and fingerprint."""
    return cache_dir(cfg) / f"{cfg.src_lang}-{cfg.tgt_lang}-{fingerprint(cfg)}"


def wait_for(directory: Path) -> None:
    """Until another process (torchrun's local rank 0) has built directory."""
    log.info("waiting for %s (built by local rank 0; mt.prepare builds it beforehand)", directory)
    while not directory.is_dir():
        time.sleep(1)


def load_corpus(cfg: DataConfig, build: bool = True) -> Corpus:
    """The encoded corpus from the cache. When no cache matches the files and settings, it is
    built first (reading, tokenising, encoding), or, with build=False, waited for."""
    directory = cache_path(cfg)
    directory.parent.mkdir(parents=True, exist_ok=True)
    if build:
        remove_stale_temporaries(directory.parent)  # caches whose builder was killed
    if not directory.is_dir():
        build_cache(cfg, directory) if build else wait_for(directory)
    tokenizer = Tokenizer(
        (directory / "src.model").read_bytes(), (directory / "tgt.model").read_bytes()
    )
    train = map_split(directory / "train")
    return Corpus(tokenizer, train, load_split(directory / "valid"), load_split(directory / "test"))
