"""Corpora -> sentencepiece -> encoded Arrow cache -> length-bucketed token batches.

One pipeline for every model: read raw parallel text (mt/readers.py), train the subword
model on the training split only, encode all splits with `datasets`, cache the result under a
hash of the files' bytes and the settings, and cut token-based batches. The training split
stays memory-mapped on disk (ids read per batch, lengths as two numpy arrays), so a corpus of
millions of pairs costs little memory and every torchrun rank shares the same pages.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from mt.config import REPO_DATA_DIR, DataConfig
from mt.errors import MTError
from mt.files import os_error, remove_stale_temporaries, temporary_path
from mt.readers import SPLITS, empty_split, hub_dataset, iter_split, source_files, split_name
from mt.special_ids import BOS_ID, EOS_ID, PAD_ID
from mt.tokenizer import Tokenizer, train_sentencepiece

log = logging.getLogger("mt")

CACHE_VERSION = 3  # bump when the cached layout or encoding changes
COUNTS = "counts.json"  # what the build read and dropped, for mt.prepare's report

datasets.disable_progress_bars()  # one log line per run beats a bar per cached split


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


# ---------------------------------------------------------------- encode + cache


def hub_fingerprint(cfg: DataConfig, split: str) -> str:
    """datasets' own fingerprint of a Hub split; a streamed one has none, so its name, config
    and split stand for it (a streamed dataset that changes upstream is not noticed)."""
    if cfg.streaming:
        return json.dumps([cfg.name, cfg.hub_config, split_name(cfg, split)])
    return hub_dataset(cfg, split)._fingerprint


def fingerprint(cfg: DataConfig) -> str:
    """Hash of the split files' bytes (a Hub dataset's own fingerprint) and of every setting
    that changes the subword model or the encoding: no text is decoded to compute it."""
    h = hashlib.sha256()
    settings = [CACHE_VERSION, cfg.format.value, cfg.src_lang, cfg.tgt_lang, cfg.train_limit]
    settings += [cfg.vocab_size, cfg.subword_type.value, cfg.joint_vocab, cfg.spm_sample]
    settings += [cfg.dedup]
    h.update(json.dumps(settings).encode())
    for split in SPLITS:
        h.update(f"\0{split}\0".encode())
        files = source_files(cfg, split)
        if files is None:
            h.update(hub_fingerprint(cfg, split).encode())
            continue
        for path in files:
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
    return h.hexdigest()[:16]


TEXT = datasets.Features({"src": datasets.Value("string"), "tgt": datasets.Value("string")})


def text_rows(cfg: DataConfig, split: str) -> Iterator[dict]:
    for src, tgt in iter_split(cfg, split):
        yield {"src": src, "tgt": tgt}


def text_dataset(cfg: DataConfig, split: str, scratch: Path) -> datasets.Dataset:
    """A split's raw pairs as an Arrow dataset on disk, written while they are read: memory
    stays bounded whatever the corpus's size."""
    if next(iter_split(cfg, split), None) is None:  # datasets cannot make an empty one
        raise empty_split(cfg, split)
    try:
        ds = datasets.Dataset.from_generator(
            text_rows,
            features=TEXT,
            gen_kwargs={"cfg": cfg, "split": split},
            cache_dir=str(scratch),
        )
    except datasets.exceptions.DatasetGenerationError as e:
        # A bad line (its own one-line message) or a full disk, as if raised here.
        if isinstance(e.__cause__, (MTError, OSError)):
            raise e.__cause__ from None
        raise
    return ds


def unique_pairs(text: datasets.Dataset, scratch: Path) -> datasets.Dataset:
    """The first occurrence of every (source, target) pair, in corpus order."""
    seen: set[bytes] = set()  # 16-byte digests: bounded memory for millions of pairs

    def first_time(rows: dict) -> list[bool]:
        keep = []
        for src, tgt in zip(rows["src"], rows["tgt"], strict=True):
            digest = hashlib.blake2b(f"{src}\t{tgt}".encode(), digest_size=16).digest()
            keep.append(digest not in seen)
            seen.add(digest)
        return keep

    return text.filter(
        first_time, batched=True, batch_size=10_000, cache_file_name=str(scratch / "unique.arrow")
    )


def sentences(ds: datasets.Dataset, *columns: str) -> Iterator[str]:
    """The named columns' text, one column after the other, read in chunks."""
    for column in columns:
        for batch in ds.select_columns([column]).iter(batch_size=10_000):
            yield from batch[column]


def train_tokenizer(cfg: DataConfig, train: datasets.Dataset) -> Tokenizer:
    if cfg.joint_vocab:
        model = train_sentencepiece(sentences(train, "src", "tgt"), cfg)
        return Tokenizer(model, model)
    src, tgt = (train_sentencepiece(sentences(train, side), cfg) for side in ("src", "tgt"))
    return Tokenizer(src, tgt)


def encode(rows: dict, tokenizer: Tokenizer) -> dict:
    return {
        "src_ids": tokenizer.encode_src(rows["src"]),
        "tgt_ids": tokenizer.encode_tgt(rows["tgt"]),
    }


def encode_split(
    cfg: DataConfig, tokenizer: Tokenizer, text: datasets.Dataset, split: str, scratch: Path
) -> datasets.Dataset:
    """The split's ids, encoded on disk (in data.num_proc processes); training text is never
    scored, so only the ids of the training split are kept."""
    ids = datasets.Sequence(datasets.Value(id_type(tokenizer)))
    columns = {"src_ids": ids, "tgt_ids": ids}
    if split != "train":
        columns = {**TEXT, **columns}
    return text.map(
        encode,
        fn_kwargs={"tokenizer": tokenizer},
        batched=True,
        batch_size=2000,
        num_proc=cfg.num_proc if cfg.num_proc > 1 else None,
        remove_columns=["src", "tgt"] if split == "train" else None,
        features=datasets.Features(columns),
        cache_file_name=str(scratch / f"{split}-ids.arrow"),
    )


def id_type(tokenizer: Tokenizer) -> str:
    """The smallest Arrow integer type that holds every id: the mapped training split is read
    at random, and each byte saved is a byte less of it resident."""
    return "uint16" if max(tokenizer.src_vocab_size, tokenizer.tgt_vocab_size) <= 65536 else "int32"


def build_cache(cfg: DataConfig, directory: Path) -> None:
    """Read every split, train the tokenizer, encode, and write it all atomically into
    directory; on the way everything is on disk, not in memory."""
    tmp = temporary_path(directory)
    scratch = tmp / "scratch"
    try:
        tmp.mkdir()
        text = {split: text_dataset(cfg, split, scratch) for split in SPLITS}
        read = len(text["train"])
        if cfg.dedup:
            text["train"] = unique_pairs(text["train"], scratch)
        counts = {"train_pairs_read": read, "duplicates_dropped": read - len(text["train"])}
        (tmp / COUNTS).write_text(json.dumps(counts) + "\n")
        tokenizer = train_tokenizer(cfg, text["train"])
        (tmp / "src.model").write_bytes(tokenizer.src_model)
        (tmp / "tgt.model").write_bytes(tokenizer.tgt_model)
        for split in SPLITS:
            encode_split(cfg, tokenizer, text[split], split, scratch).save_to_disk(str(tmp / split))
        del text
        shutil.rmtree(scratch)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise os_error(directory, e, "the data cache") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        tmp.rename(directory)
    except OSError:  # another process finished the same cache first; theirs is identical
        shutil.rmtree(tmp, ignore_errors=True)


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


def cache_dir(cfg: DataConfig) -> Path:
    return Path(cfg.cache_dir).expanduser() if cfg.cache_dir else REPO_DATA_DIR / "cache"


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


# ---------------------------------------------------------------- batching


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
    sizes = np.maximum(src_lens, tgt_lens)[order].tolist()
    batches, start, longest = [], 0, 0
    for pos, size in enumerate(sizes):
        longest = max(longest, size)
        if pos > start and longest * (pos - start + 1) > max_tokens:
            batches.append(order[start:pos])
            start, longest = pos, size
    batches.append(order[start:])
    if rng is not None:
        rng.shuffle(batches)
    return batches


def dropped_by(split: Split | MappedSplit, max_len: int, max_ratio: float | None) -> dict:
    """Per filter, a mask of the training pairs it drops (lengths count the end marker)."""
    src, tgt = split.src_lengths(), split.tgt_lengths()
    reasons = {
        "empty": (src <= 1) | (tgt <= 1),
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
) -> list[np.ndarray]:
    """This epoch's training batches: filtered pairs dropped, shuffled by seed+epoch."""
    src_lens, tgt_lens = split.src_lengths(), split.tgt_lengths()
    keep = np.flatnonzero(
        ~np.logical_or.reduce(list(dropped_by(split, max_len, max_ratio).values()))
    )
    rng = np.random.default_rng([seed, epoch])
    return [keep[b] for b in token_batches(src_lens[keep], tgt_lens[keep], max_tokens, rng)]


def padded(rows: list[np.ndarray], before: int | None = None, after: int | None = None):
    """(B, longest) long tensor of the rows, each with an optional id before and after."""
    extra = (before is not None) + (after is not None)
    out = np.full((len(rows), max(len(r) for r in rows) + extra), PAD_ID, dtype=np.int64)
    for k, row in enumerate(rows):
        start = 0 if before is None else 1
        if before is not None:
            out[k, 0] = before
        out[k, start : start + len(row)] = row
        if after is not None:
            out[k, start + len(row)] = after
    return torch.from_numpy(out)


def make_batch(split: Split | MappedSplit, indices: np.ndarray) -> Batch:
    """Pad the chosen sentences into tensors (on the CPU)."""
    src, tgt = split.pair_ids(indices)
    return Batch(
        src=padded(src),
        tgt_in=padded(tgt, before=BOS_ID),
        tgt_out=padded(tgt, after=EOS_ID),
        num_tgt_tokens=sum(len(t) + 1 for t in tgt),
    )
