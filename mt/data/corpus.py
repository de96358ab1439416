"""The encoded corpus as training reads it: the memory-mapped training split, the held-out
splits in memory, and the tokenizer, from a cache built once (mt/data/cache.py).

The training split stays on disk (ids read per batch; lengths and corpus marks as numpy
arrays), so a corpus of millions of pairs costs little memory and every torchrun rank shares
the same pages. Batching is mt/data/batches.py.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from mt.common.errors import MTError
from mt.common.files import remove_stale_temporaries, temporary_path
from mt.common.special_ids import UNK_ID
from mt.config.checks import parse
from mt.config.schema import DataConfig
from mt.data.cache import (
    CHECKSUMS,
    COUNTS,
    build_cache,
    cache_dir,
    fingerprint,
    small_part_digests,
)
from mt.data.readers import split_directions
from mt.data.tokenizer import Tokenizer

log = logging.getLogger("mt")


@dataclass
class Split:
    """A held-out split in memory: raw text for scoring, subword ids for the model."""

    src_text: list[str]
    tgt_text: list[str]
    src_ids: list[torch.Tensor]  # each ends in EOS
    tgt_ids: list[torch.Tensor]  # no BOS/EOS
    # A multilingual run's: each pair's direction, an index into directions ("de-en", ...)
    sources: np.ndarray | None = None
    directions: list[str] = field(default_factory=list)
    zero_shot: list[str] = field(default_factory=list)  # those of directions not trained

    def __len__(self) -> int:
        return len(self.src_ids)

    def src_lengths(self) -> np.ndarray:
        return np.array([len(ids) for ids in self.src_ids], dtype=np.int64)

    def tgt_lengths(self) -> np.ndarray:
        """Target lengths counting the BOS (input) or EOS (output) token."""
        return np.array([len(ids) + 1 for ids in self.tgt_ids], dtype=np.int64)

    def language_texts(self, data: DataConfig) -> dict[str, list[str]]:
        """Each language's sentences in this split (of data's languages), sources and
        targets."""
        if not self.directions:
            return {data.src_lang: self.src_text, data.tgt_lang: self.tgt_text}
        texts: dict[str, list[str]] = {}
        for k, direction in enumerate(self.directions):
            chosen = np.flatnonzero(self.sources == k)
            for lang, side in zip(parse(direction), (self.src_text, self.tgt_text), strict=True):
                texts.setdefault(lang, []).extend(side[i] for i in chosen)
        return texts

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
    counts: dict  # what the build read and dropped (cache.COUNTS)
    origin: str = "found"  # how load_corpus came by the cache: found, built or rebuilt


def load_split(path: Path) -> Split:
    """A held-out split, read whole into memory (they are small)."""
    columns = datasets.load_from_disk(str(path)).with_format("python").to_dict()
    return Split(
        src_text=columns["src"],
        tgt_text=columns["tgt"],
        src_ids=[torch.tensor(ids, dtype=torch.long) for ids in columns["src_ids"]],
        tgt_ids=[torch.tensor(ids, dtype=torch.long) for ids in columns["tgt_ids"]],
        sources=np.array(columns["source"]) if "source" in columns else None,
    )


def map_split(path: Path) -> MappedSplit:
    """The training split, memory-mapped from the cache."""
    return MappedSplit(datasets.load_from_disk(str(path)).data.table)


def cache_path(cfg: DataConfig, tokenizer: Tokenizer | None = None) -> Path:
    """Where the corpus's cache lies (or will): named by the language pair and fingerprint."""
    return cache_dir(cfg) / f"{cfg.src_lang}-{cfg.tgt_lang}-{fingerprint(cfg, tokenizer)}"


def wait_for(directory: Path) -> None:
    """Until another process (torchrun's local rank 0) has built directory."""
    log.info("waiting for %s (built by local rank 0; mt.prepare builds it beforehand)", directory)
    while not directory.is_dir():
        time.sleep(1)


def load_corpus(cfg: DataConfig, build: bool = True, tokenizer: Tokenizer | None = None) -> Corpus:
    """The encoded corpus from the cache. When no cache matches the files and settings, it is
    built first (reading, tokenising, encoding; with a given tokenizer, a parent model's, none
    is trained), or, with build=False, waited for. A damaged cache is named and, with build,
    rebuilt."""
    directory = cache_path(cfg, tokenizer)
    directory.parent.mkdir(parents=True, exist_ok=True)
    if build:
        remove_stale_temporaries(directory.parent)  # caches whose builder was killed
    origin = "found"
    if not directory.is_dir():
        build_cache(cfg, directory, tokenizer) if build else wait_for(directory)
        origin = "built" if build else origin
    try:
        corpus = open_cache(directory)
    except DamagedCache as damage:
        if not build:
            how = "rebuild it with mt.prepare and the same data settings"
            raise MTError(f"{damage}; {how}") from None
        log.warning("%s; rebuilding the cache", damage)
        discard(directory)
        build_cache(cfg, directory, tokenizer)
        corpus, origin = open_cache(directory), "rebuilt"
    corpus.origin = origin
    if cfg.directions:
        corpus.valid.directions = split_directions(cfg, "valid")
        corpus.test.directions = split_directions(cfg, "test")
        corpus.test.zero_shot = corpus.test.directions[len(cfg.directions) :]
    return corpus


class DamagedCache(Exception):
    """A cache file that cannot be read: named, with the reader's complaint."""


def open_cache(directory: Path) -> Corpus:
    """The corpus a built cache holds; DamagedCache names the first part that cannot be read."""
    verify_checksums(directory)
    models = [read_part(directory / name, Path.read_bytes) for name in ("src.model", "tgt.model")]
    try:
        tokenizer = Tokenizer(*models)
    except (RuntimeError, OSError, ValueError) as e:
        raise DamagedCache(f"{directory}/src.model or tgt.model: damaged cache ({e})") from None
    train = read_part(directory / "train", lambda path: checked(map_split(path), tokenizer))
    valid, test = (read_part(directory / name, load_split) for name in ("valid", "test"))
    return Corpus(tokenizer, train, valid, test, read_part(directory / COUNTS, read_counts))


def read_counts(path: Path) -> dict:
    """The build's counts (cache.COUNTS), or ValueError when they are not what it writes."""
    counts = json.loads(path.read_text(encoding="utf-8"))
    keys = {"train_pairs_read", "duplicates_dropped"}
    if not (isinstance(counts, dict) and keys <= set(counts)):
        raise ValueError(f"not the counts a build writes ({', '.join(sorted(keys))})")
    if not all(isinstance(counts[key], int) and counts[key] >= 0 for key in keys):
        raise ValueError("counts that are not whole numbers")
    return counts


def verify_checksums(directory: Path) -> None:
    """The small parts' bytes are those the build wrote (a cache built before checksums were
    kept has none to check)."""
    path = directory / CHECKSUMS
    if not path.is_file():
        return
    expected = read_part(path, lambda p: json.loads(p.read_text(encoding="utf-8")))
    found = small_part_digests(directory)
    for name, digest in expected.items():
        if found.get(name) != digest:
            change = "missing" if name not in found else "its bytes changed since the build"
            raise DamagedCache(f"{directory / name}: damaged cache ({change})")


def read_part(path: Path, read):
    """read(path), or DamagedCache naming path with the reader's complaint."""
    try:
        return read(path)
    # Arrow's and datasets' complaints about a file (ArrowInvalid is a ValueError)
    except (OSError, ValueError, KeyError, pa.ArrowException) as e:
        reason = " ".join(str(e).split()) or type(e).__name__
        raise DamagedCache(f"{path}: damaged cache ({reason})") from None


def checked(train: MappedSplit, tokenizer: Tokenizer) -> MappedSplit:
    """train, once its lists are sound and every id is a piece of its vocabulary (none a
    padding id): one scan of the mapped ids, which finds bytes overwritten since the build."""
    sides = (
        (train.src_column, tokenizer.src_vocab_size),
        (train.tgt_column, tokenizer.tgt_vocab_size),
    )
    for column, size in sides:
        column.validate(full=True)
        extremes = pc.min_max(pc.list_flatten(column))
        low, high = extremes["min"].as_py(), extremes["max"].as_py()
        if low is not None and (low < UNK_ID or high >= size):
            raise ValueError(f"ids from {low} to {high}, outside the vocabulary's [1, {size})")
    return train


def discard(directory: Path) -> None:
    """Remove a damaged cache: first out of its name (one rename), then from the disk."""
    doomed = temporary_path(directory)
    directory.rename(doomed)
    shutil.rmtree(doomed, ignore_errors=True)
