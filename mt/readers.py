"""Reading raw parallel text: local files (parallel, TSV, JSONL; plain or .gz) or the Hub,
with errors that name the file and line. Multi30k is fetched when it is missing."""

from __future__ import annotations

import gzip
import json
import urllib.request
from pathlib import Path

import datasets

from mt.config import REPO_DATA_DIR, CorpusFormat, DataConfig
from mt.errors import MTError

MULTI30K_URL = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw/{file}"
SPLITS = ("train", "valid", "test")


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


def parallel_files(cfg: DataConfig, split: str) -> list[Path]:
    """The source and target files of a split (fetching Multi30k's when they are missing)."""
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


def read_parallel(cfg: DataConfig, split: str) -> tuple[list[str], list[str]]:
    return read_aligned(*parallel_files(cfg, split))


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
    path = single_file(cfg, split)
    src, tgt = [], []
    for number, line in enumerate(read_lines(path), start=1):
        fields = line.split("\t")
        if len(fields) != 2:
            raise MTError(f"{path}:{number}: expected 2 tab-separated fields, got {len(fields)}")
        src.append(fields[0])
        tgt.append(fields[1])
    return src, tgt


def read_jsonl(cfg: DataConfig, split: str) -> tuple[list[str], list[str]]:
    path = single_file(cfg, split)
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


def hub_dataset(cfg: DataConfig, split: str) -> datasets.Dataset:
    """A split of a Hub dataset (memory-mapped from the local datasets cache)."""
    name = split_name(cfg, split)
    try:
        return datasets.load_dataset(cfg.name, cfg.hub_config, split=name)
    except Exception as e:  # the Hub raises many types: network, missing split, auth
        raise MTError(f"cannot load Hub dataset '{cfg.name}' split '{name}': {e}") from None


def read_hub(cfg: DataConfig, split: str) -> tuple[list[str], list[str]]:
    """A Hub dataset with either a `translation` dict column or one column per language."""
    ds = hub_dataset(cfg, split)
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
