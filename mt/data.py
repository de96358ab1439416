"""Corpora -> sentencepiece -> encoded Arrow cache -> length-bucketed token batches.

One pipeline for every model: read raw parallel text (local files, TSV, JSONL or the Hub),
train the subword model on the training split only, encode all splits with `datasets`, cache
the result under a hash of the text and the settings, and cut token-based batches.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from mt.config import REPO_DATA_DIR, CorpusFormat, DataConfig
from mt.errors import MTError
from mt.files import os_error, remove_stale_temporaries, temporary_path
from mt.tokenizer import BOS_ID, EOS_ID, PAD_ID, Tokenizer, train_sentencepiece

MULTI30K_URL = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw/{file}"
CACHE_VERSION = 1  # bump when the cached layout or encoding changes
SPLITS = ("train", "valid", "test")

datasets.disable_progress_bars()  # one log line per run beats a bar per cached split


@dataclass
class Split:
    """One split in memory: raw text for scoring, subword ids for the model."""

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


@dataclass
class Corpus:
    tokenizer: Tokenizer
    train: Split
    valid: Split
    test: Split


@dataclass
class Batch:
    src: torch.Tensor  # (B, S) source ids, padded with PAD_ID
    tgt_in: torch.Tensor  # (B, T) BOS + target
    tgt_out: torch.Tensor  # (B, T) target + EOS
    num_tgt_tokens: int  # real (non-pad) tokens in tgt_out

    def to(self, device: torch.device) -> Batch:
        # Pinned host memory lets the copy overlap with GPU work.
        pin = device.type == "cuda"

        def move(t: torch.Tensor) -> torch.Tensor:
            return (t.pin_memory() if pin else t).to(device, non_blocking=pin)

        return Batch(move(self.src), move(self.tgt_in), move(self.tgt_out), self.num_tgt_tokens)


# ---------------------------------------------------------------- reading raw text


def data_root(cfg: DataConfig) -> Path:
    return Path(cfg.root).expanduser() if cfg.root else REPO_DATA_DIR


def split_name(cfg: DataConfig, split: str) -> str:
    return {"train": cfg.train_split, "valid": cfg.valid_split, "test": cfg.test_split}[split]


def decode_line(raw: bytes, source: str | Path, number: int) -> str:
    """One line of UTF-8 input without its line ending (and line 1 without a BOM); an
    undecodable line is named by its file and number."""
    try:
        line = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as e:
        raise MTError(
            f"{source}:{number}: not valid UTF-8 ({e.reason} at byte {e.start})"
        ) from None
    return line.removeprefix("\ufeff") if number == 1 else line


def read_lines(path: Path) -> list[str]:
    """Lines of a UTF-8 text file (plain or .gz) without line endings."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            return [decode_line(raw, path, number) for number, raw in enumerate(f, start=1)]
    except (OSError, EOFError) as e:
        raise MTError(f"{path}: cannot read ({e})") from None


def find_file(base: Path) -> Path | None:
    """base itself or base.gz, whichever exists."""
    for candidate in (base, base.with_name(base.name + ".gz")):
        if candidate.is_file():
            return candidate
    return None


def existing_file(base: Path, split: str) -> Path:
    """base or base.gz; a clear error naming both when neither exists."""
    path = find_file(base)
    if path is None:
        raise MTError(f"missing {base} (or {base}.gz) for data split '{split}'")
    return path


def download_multi30k(directory: Path, files: list[str]) -> None:
    """Fetch Multi30k task 1 raw files from the dataset's public repository."""
    directory.mkdir(parents=True, exist_ok=True)
    for file in files:
        target = directory / file
        tmp = target.with_name(target.name + ".part")
        with urllib.request.urlopen(MULTI30K_URL.format(file=file), timeout=30) as response:
            tmp.write_bytes(response.read())
        tmp.replace(target)


def read_parallel(cfg: DataConfig, split: str) -> tuple[list[str], list[str]]:
    directory = data_root(cfg) / cfg.name
    name = split_name(cfg, split)
    bases = [directory / f"{name}.{lang}" for lang in (cfg.src_lang, cfg.tgt_lang)]
    if cfg.name == "multi30k" and cfg.download and any(find_file(b) is None for b in bases):
        try:
            download_multi30k(directory, [f"{b.name}.gz" for b in bases if find_file(b) is None])
        except OSError as e:
            missing = ", ".join(f"{b}.gz" for b in bases if find_file(b) is None)
            raise MTError(
                f"missing {missing} and the download failed ({e}). Put the Multi30k task 1 "
                f"raw files ({{train,val,test_2016_flickr}}.{{de,en,fr,cs}}.gz) in {directory}, "
                f"or point data.root at a directory holding multi30k/"
            ) from None
    return read_aligned(*(existing_file(base, split) for base in bases))


def read_aligned(src_path: Path, tgt_path: Path) -> tuple[list[str], list[str]]:
    """Two line-aligned text files; a clear error when their line counts differ."""
    src, tgt = read_lines(src_path), read_lines(tgt_path)
    if len(src) != len(tgt):
        raise MTError(
            f"{src_path} has {len(src)} lines but {tgt_path} has {len(tgt)}; "
            f"parallel files must be line-aligned"
        )
    return src, tgt


def read_tsv(cfg: DataConfig, split: str) -> tuple[list[str], list[str]]:
    path = existing_file(data_root(cfg) / cfg.name / f"{split_name(cfg, split)}.tsv", split)
    src, tgt = [], []
    for number, line in enumerate(read_lines(path), start=1):
        fields = line.split("\t")
        if len(fields) != 2:
            raise MTError(f"{path}:{number}: expected 2 tab-separated fields, got {len(fields)}")
        src.append(fields[0])
        tgt.append(fields[1])
    return src, tgt


def read_jsonl(cfg: DataConfig, split: str) -> tuple[list[str], list[str]]:
    path = existing_file(data_root(cfg) / cfg.name / f"{split_name(cfg, split)}.jsonl", split)
    src, tgt = [], []
    for number, line in enumerate(read_lines(path), start=1):
        try:
            row = json.loads(line)
            pair = row[cfg.src_lang], row[cfg.tgt_lang]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise MTError(f"{path}:{number}: bad JSON line ({e!r})") from None
        for lang, text in zip((cfg.src_lang, cfg.tgt_lang), pair, strict=True):
            if not isinstance(text, str):
                raise MTError(f'{path}:{number}: "{lang}" is {type(text).__name__}, not a string')
        src.append(pair[0])
        tgt.append(pair[1])
    return src, tgt


def read_hub(cfg: DataConfig, split: str) -> tuple[list[str], list[str]]:
    """A Hub dataset with either a `translation` dict column or one column per language."""
    name = split_name(cfg, split)
    try:
        ds = datasets.load_dataset(cfg.name, cfg.hub_config, split=name)
    except Exception as e:  # the Hub raises many types: network, missing split, auth
        raise MTError(f"cannot load Hub dataset '{cfg.name}' split '{name}': {e}") from None
    if "translation" in ds.column_names:
        pairs = ds["translation"]
        return [p[cfg.src_lang] for p in pairs], [p[cfg.tgt_lang] for p in pairs]
    for lang in (cfg.src_lang, cfg.tgt_lang):
        if lang not in ds.column_names:
            raise MTError(f"Hub dataset '{cfg.name}' has no column '{lang}' ({ds.column_names})")
    return list(ds[cfg.src_lang]), list(ds[cfg.tgt_lang])


READERS = {
    CorpusFormat.parallel: read_parallel,
    CorpusFormat.tsv: read_tsv,
    CorpusFormat.jsonl: read_jsonl,
    CorpusFormat.hub: read_hub,
}


def read_raw(cfg: DataConfig) -> dict[str, tuple[list[str], list[str]]]:
    """Raw (source, target) lines of every split; train_limit applied; empty corpora refused."""
    raw = {split: READERS[cfg.format](cfg, split) for split in SPLITS}
    if cfg.train_limit is not None:
        src, tgt = raw["train"]
        raw["train"] = (src[: cfg.train_limit], tgt[: cfg.train_limit])
    for split, (src, _) in raw.items():
        if not src:
            raise MTError(
                f"data split '{split}' ({split_name(cfg, split)} in {data_root(cfg) / cfg.name})"
                f" is empty"
            )
    return raw


# ---------------------------------------------------------------- encode + cache


def fingerprint(cfg: DataConfig, raw: dict[str, tuple[list[str], list[str]]]) -> str:
    """Hash of the text and every setting that changes the subword model or the encoding."""
    h = hashlib.sha256()
    settings = [CACHE_VERSION, cfg.vocab_size, cfg.subword_type.value, cfg.joint_vocab]
    h.update(json.dumps(settings).encode())
    for split in SPLITS:
        for side in raw[split]:
            h.update(f"\0{split}\0{len(side)}\0".encode())
            h.update("\n".join(side).encode())
    return h.hexdigest()[:16]


def train_tokenizer(cfg: DataConfig, train_src: list[str], train_tgt: list[str]) -> Tokenizer:
    if cfg.joint_vocab:
        model = train_sentencepiece(train_src + train_tgt, cfg)
        return Tokenizer(model, model)
    return Tokenizer(train_sentencepiece(train_src, cfg), train_sentencepiece(train_tgt, cfg))


def encode_split(tokenizer: Tokenizer, src: list[str], tgt: list[str]) -> datasets.Dataset:
    ds = datasets.Dataset.from_dict({"src": src, "tgt": tgt})
    return ds.map(
        lambda rows: {
            "src_ids": tokenizer.encode_src(rows["src"]),
            "tgt_ids": tokenizer.encode_tgt(rows["tgt"]),
        },
        batched=True,
        batch_size=2000,
    )


def build_cache(cfg: DataConfig, raw: dict, directory: Path) -> None:
    """Train the tokenizer, encode every split, and write them atomically into directory."""
    tokenizer = train_tokenizer(cfg, *raw["train"])
    tmp = temporary_path(directory)
    try:
        tmp.mkdir()
        (tmp / "src.model").write_bytes(tokenizer.src_model)
        (tmp / "tgt.model").write_bytes(tokenizer.tgt_model)
        for split in SPLITS:
            encode_split(tokenizer, *raw[split]).save_to_disk(str(tmp / split))
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise os_error(directory, e, "the data cache") from None
    try:
        tmp.rename(directory)
    except OSError:  # another process finished the same cache first; theirs is identical
        shutil.rmtree(tmp, ignore_errors=True)


def load_split(path: Path) -> Split:
    ds = datasets.load_from_disk(str(path)).with_format("python")
    columns = ds.to_dict()
    return Split(
        src_text=columns["src"],
        tgt_text=columns["tgt"],
        src_ids=[torch.tensor(ids, dtype=torch.long) for ids in columns["src_ids"]],
        tgt_ids=[torch.tensor(ids, dtype=torch.long) for ids in columns["tgt_ids"]],
    )


def cache_dir(cfg: DataConfig) -> Path:
    return Path(cfg.cache_dir).expanduser() if cfg.cache_dir else REPO_DATA_DIR / "cache"


def load_corpus(cfg: DataConfig) -> Corpus:
    """Read, tokenise and encode all splits, reusing the cache when text and settings match."""
    raw = read_raw(cfg)
    directory = cache_dir(cfg) / f"{cfg.src_lang}-{cfg.tgt_lang}-{fingerprint(cfg, raw)}"
    directory.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(directory.parent)  # caches whose builder was killed
    if not directory.is_dir():
        build_cache(cfg, raw, directory)
    tokenizer = Tokenizer(
        (directory / "src.model").read_bytes(), (directory / "tgt.model").read_bytes()
    )
    return Corpus(tokenizer, *(load_split(directory / split) for split in SPLITS))


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


def train_batches(split: Split, max_tokens: int, max_len: int, seed: int, epoch: int):
    """This epoch's training batches: over-long or empty pairs dropped, shuffled by seed+epoch."""
    src_lens, tgt_lens = split.src_lengths(), split.tgt_lengths()
    keep = np.flatnonzero(
        (src_lens > 1) & (tgt_lens > 1) & (src_lens <= max_len) & (tgt_lens <= max_len)
    )
    rng = np.random.default_rng([seed, epoch])
    return [keep[b] for b in token_batches(src_lens[keep], tgt_lens[keep], max_tokens, rng)]


def make_batch(split: Split, indices: np.ndarray) -> Batch:
    """Pad the chosen sentences into tensors (on the CPU)."""
    src = [split.src_ids[i] for i in indices]
    tgt = [split.tgt_ids[i] for i in indices]
    bos, eos = torch.tensor([BOS_ID]), torch.tensor([EOS_ID])
    tgt_in = pad_sequence(
        [torch.cat([bos, t]) for t in tgt], batch_first=True, padding_value=PAD_ID
    )
    tgt_out = pad_sequence(
        [torch.cat([t, eos]) for t in tgt], batch_first=True, padding_value=PAD_ID
    )
    return Batch(
        src=pad_sequence(src, batch_first=True, padding_value=PAD_ID),
        tgt_in=tgt_in,
        tgt_out=tgt_out,
        num_tgt_tokens=sum(len(t) + 1 for t in tgt),
    )
