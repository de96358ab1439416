"""Reading raw parallel text: local files (parallel, TSV, JSONL; plain or .gz) or the Hub,
with errors that name the file and line. Multi30k is fetched when it is missing."""

from __future__ import annotations

import gzip
import itertools
import json
import logging
import os
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from mt.common.errors import MissingCorpus, MTError
from mt.config.schema import CorpusFormat, DataConfig
from mt.data.directions import direction_config, zero_shot

if TYPE_CHECKING:
    import datasets

log = logging.getLogger("mt")

SPLITS = ("train", "valid", "test")


def data_root(cfg: DataConfig) -> Path:
    """data.root, else $MT_DATA_DIR, else ./data: beside the user's runs, never inside the
    installed package (from a checkout's top level, ./data is the repository's data/)."""
    return Path(cfg.root or os.environ.get("MT_DATA_DIR") or "data").expanduser()


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


def iter_lines(path: Path) -> Iterator[str]:
    """Lines of a UTF-8 text file (plain or .gz) without line endings, as they are read."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            for number, raw in enumerate(f, start=1):
                yield decode_line(raw, path, number)
    except (OSError, EOFError) as e:
        raise MTError(f"{path}: cannot read ({e})") from None


def find_file(base: Path) -> Path | None:
    """base itself or base.gz, whichever exists."""
    for candidate in (base, base.with_name(base.name + ".gz")):
        if candidate.is_file():
            return candidate
    return None


def run_corpus(data: DataConfig, data_root: str | None) -> DataConfig:
    """A finished run's corpus settings, pointed where the corpus lies now (data_root, else
    where the run read it)."""
    return replace(data, root=data_root or data.root)


def existing_file(base: Path, split: str) -> Path:
    """base or base.gz; a clear error naming both when neither exists."""
    path = find_file(base)
    if path is None:
        raise MissingCorpus(
            f"missing {base} (or {base}.gz) for data split '{split}'", base.parent.name
        )
    return path


def download_multi30k(directory: Path, files: list[str], url: str) -> None:
    """Fetch Multi30k task 1 raw files from url ({file}: each file's name)."""
    directory.mkdir(parents=True, exist_ok=True)
    for file in files:
        target = directory / file
        tmp = target.with_name(target.name + ".part")
        with urllib.request.urlopen(url.format(file=file), timeout=30) as response:
            tmp.write_bytes(response.read())
        tmp.replace(target)


def parallel_files(cfg: DataConfig, split: str) -> list[Path]:
    """The source and target files of a split (fetching Multi30k's when they are missing)."""
    directory = data_root(cfg) / cfg.name
    name = split_name(cfg, split)
    bases = [directory / f"{name}.{lang}" for lang in (cfg.src_lang, cfg.tgt_lang)]
    if cfg.name == "multi30k" and cfg.download and any(find_file(b) is None for b in bases):
        try:
            wanted = [f"{b.name}.gz" for b in bases if find_file(b) is None]
            log.warning("downloading Multi30k's %s into %s", ", ".join(wanted), directory)
            download_multi30k(directory, wanted, cfg.download_url)
        except (OSError, ValueError) as e:  # ValueError: not a URL urllib can open
            missing = ", ".join(f"{b}.gz" for b in bases if find_file(b) is None)
            raise MissingCorpus(
                f"missing {missing} and the download failed ({e}). Put the Multi30k task 1 "
                f"raw files ({{train,val,test_2016_flickr}}.{{de,en,fr,cs}}.gz) in {directory}",
                cfg.name,
            ) from None
    return [existing_file(base, split) for base in bases]


def single_file(cfg: DataConfig, split: str) -> Path:
    """The one file of a split in the tsv or jsonl format."""
    suffix = "tsv" if cfg.format is CorpusFormat.tsv else "jsonl"
    return existing_file(data_root(cfg) / cfg.name / f"{split_name(cfg, split)}.{suffix}", split)


def source_files(cfg: DataConfig, split: str) -> list[Path] | None:
    """The local files a split is read from; None for a Hub dataset."""
    if cfg.format is CorpusFormat.parallel:
        return parallel_files(cfg, split)
    if cfg.format is CorpusFormat.hub:
        return None
    return [single_file(cfg, split)]


def iter_aligned(src_path: Path, tgt_path: Path) -> Iterator[tuple[str, str]]:
    """Pairs of two line-aligned text files; a clear error when their line counts differ."""
    src_lines, tgt_lines = iter_lines(src_path), iter_lines(tgt_path)
    count = 0
    for src, tgt in itertools.zip_longest(src_lines, tgt_lines):
        if src is None or tgt is None:
            src_count = count + (src is not None) + sum(1 for _ in src_lines)
            tgt_count = count + (tgt is not None) + sum(1 for _ in tgt_lines)
            raise MTError(
                f"{src_path} has {src_count} lines but {tgt_path} has {tgt_count}; "
                f"parallel files must be line-aligned"
            )
        count += 1
        yield src, tgt


def read_aligned(src_path: Path, tgt_path: Path) -> tuple[list[str], list[str]]:
    """Two line-aligned text files, whole."""
    return unzipped(iter_aligned(src_path, tgt_path))


def unzipped(pairs: Iterable[tuple[str, str]]) -> tuple[list[str], list[str]]:
    src, tgt = [], []
    for a, b in pairs:
        src.append(a)
        tgt.append(b)
    return src, tgt


def iter_parallel(cfg: DataConfig, split: str) -> Iterator[tuple[str, str]]:
    return iter_aligned(*parallel_files(cfg, split))


def iter_tsv(cfg: DataConfig, split: str) -> Iterator[tuple[str, str]]:
    path = single_file(cfg, split)
    for number, line in enumerate(iter_lines(path), start=1):
        fields = line.split("\t")
        if len(fields) != 2:
            raise MTError(f"{path}:{number}: expected 2 tab-separated fields, got {len(fields)}")
        yield fields[0], fields[1]


def iter_jsonl(cfg: DataConfig, split: str) -> Iterator[tuple[str, str]]:
    path = single_file(cfg, split)
    for number, line in enumerate(iter_lines(path), start=1):
        try:
            row = json.loads(line)
            pair = row[cfg.src_lang], row[cfg.tgt_lang]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise MTError(f"{path}:{number}: bad JSON line ({e!r})") from None
        for lang, text in zip((cfg.src_lang, cfg.tgt_lang), pair, strict=True):
            if not isinstance(text, str):
                raise MTError(f'{path}:{number}: "{lang}" is {type(text).__name__}, not a string')
        yield pair


def hub_dataset(cfg: DataConfig, split: str) -> datasets.Dataset | datasets.IterableDataset:
    """A split of a Hub dataset: memory-mapped from the local datasets cache, or, with
    data.streaming=true, read as it is iterated (no full download first)."""
    import datasets  # the Hub's alone: reading local files never imports it

    name = split_name(cfg, split)
    try:
        return datasets.load_dataset(cfg.name, cfg.hub_config, split=name, streaming=cfg.streaming)
    except Exception as e:  # the Hub raises many types: network, missing split, auth
        raise MTError(f"cannot load Hub dataset '{cfg.name}' split '{name}': {e}") from None


def iter_hub(cfg: DataConfig, split: str) -> Iterator[tuple[str, str]]:
    """A Hub dataset with either a `translation` dict column or one column per language."""
    ds = hub_dataset(cfg, split)
    if ds.column_names is not None and "translation" not in ds.column_names:
        for lang in (cfg.src_lang, cfg.tgt_lang):
            if lang not in ds.column_names:
                raise MTError(
                    f"Hub dataset '{cfg.name}' has no column '{lang}' ({ds.column_names})"
                )
    for batch in ds.iter(batch_size=10_000):
        if "translation" in batch:
            yield from ((p[cfg.src_lang], p[cfg.tgt_lang]) for p in batch["translation"])
        else:
            yield from zip(batch[cfg.src_lang], batch[cfg.tgt_lang], strict=True)


PAIRS = {
    CorpusFormat.parallel: iter_parallel,
    CorpusFormat.tsv: iter_tsv,
    CorpusFormat.jsonl: iter_jsonl,
    CorpusFormat.hub: iter_hub,
}


def iter_split(cfg: DataConfig, split: str) -> Iterator[tuple[str, str]]:
    """A split's (source, target) pairs as they are read; train_limit applied to train."""
    pairs = PAIRS[cfg.format](cfg, split)
    if split == "train" and cfg.train_limit is not None:
        pairs = itertools.islice(pairs, cfg.train_limit)
    return pairs


def split_sources(cfg: DataConfig, split: str) -> list[DataConfig]:
    """The corpora a split is read from, each as a DataConfig of its own: the directions of a
    multilingual run (data.directions; for test, then the zero-shot directions whose files
    exist), the training corpora of data.train_sources (a key they leave null is data's), or
    data.* itself."""
    if cfg.directions:
        return [direction_config(cfg, d) for d in split_directions(cfg, split)]
    if split != "train" or not cfg.train_sources:
        return [cfg]
    return [
        replace(
            cfg,
            name=source.name,
            format=source.format or cfg.format,
            root=source.root if source.root is not None else cfg.root,
            hub_config=source.hub_config if source.hub_config is not None else cfg.hub_config,
            train_split=source.split or cfg.train_split,
            train_sources=[],
        )
        for source in cfg.train_sources
    ]


def split_directions(cfg: DataConfig, split: str) -> list[str]:
    """A multilingual run's directions in a split: those trained, and in test the zero-shot
    ones whose files are there (never fetched: they are an extra)."""
    if split != "test" or cfg.format is not CorpusFormat.parallel:
        return list(cfg.directions)
    directory, name = data_root(cfg) / cfg.name, split_name(cfg, split)
    found = [
        d
        for d in zero_shot(cfg)
        if all(find_file(directory / f"{name}.{lang}") for lang in d.split("-"))
    ]
    return list(cfg.directions) + found


def read_split(cfg: DataConfig, split: str) -> tuple[list[str], list[str]]:
    """A split's source and target lines, whole (evaluation sets are small)."""
    return unzipped(iter_split(cfg, split))


def empty_split(cfg: DataConfig, split: str) -> MTError:
    where = f"{split_name(cfg, split)} in {data_root(cfg) / cfg.name}"
    return MTError(f"data split '{split}' ({where}) is empty")


def training_pairs(cfg: DataConfig) -> Iterator[tuple[str, str]]:
    """Every (source, target) pair of every training corpus of cfg, streamed."""
    for source in split_sources(cfg, "train"):
        yield from iter_split(source, "train")
