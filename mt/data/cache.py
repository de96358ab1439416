"""Building the encoded corpus cache: read every split into an on-disk Arrow dataset, train the
subword model on the training split, encode on disk, and write it all atomically under a key
made of the files' bytes and the settings. Memory stays bounded whatever the corpus's size."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa

from mt.common.errors import MTError
from mt.common.files import os_error, sha256_file, temporary_path
from mt.config.schema import DataConfig
from mt.data.readers import (
    SPLITS,
    empty_split,
    hub_dataset,
    iter_split,
    source_files,
    split_name,
    split_sources,
)
from mt.data.tokenizer import Tokenizer, train_sentencepiece

CACHE_VERSION = 4  # bump when the cached layout or encoding changes
COUNTS = "counts.json"  # what the build read and dropped, for mt.prepare's report
DIGESTS = "file-digests.json"  # the files already hashed, so a warm start reads no text
CHECKSUMS = "checksums.json"  # in each cache: the digests of its small parts, checked on load

log = logging.getLogger("mt")

datasets.disable_progress_bars()  # one log line per run beats a bar per cached split


def cache_dir(cfg: DataConfig) -> Path:
    """data.cache_dir, else $MT_CACHE_DIR, else the user's cache directory ($XDG_CACHE_HOME
    or ~/.cache, then mt): derived data, rebuilt when missing, never beside a corpus that may
    be read-only or shared, nor inside the installed package."""
    if cfg.cache_dir or os.environ.get("MT_CACHE_DIR"):
        return Path(cfg.cache_dir or os.environ["MT_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mt"


def hub_fingerprint(cfg: DataConfig, split: str) -> str:
    """datasets' own fingerprint of a Hub split; a streamed one has none, so its name, config
    and split stand for it (a streamed dataset that changes upstream is not noticed)."""
    if cfg.streaming:
        return json.dumps([cfg.name, cfg.hub_config, split_name(cfg, split)])
    return hub_dataset(cfg, split)._fingerprint


def file_digest(path: Path, known: dict) -> str:
    """sha256 of a file's bytes, hashed once: later runs find it in known under the file's
    size, modification time, inode and change time. A rewritten file changes its modification
    time; one edited in place with its size and modification time put back still changes its
    change time, which no user can set."""
    stat = path.stat()
    key = str(path.resolve())
    stamp = [stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns]
    entry = known.get(key)
    if not (isinstance(entry, list) and entry[:4] == stamp and len(entry) == 5):
        known[key] = stamp + [sha256_file(path)]
    return known[key][4]


def known_digests(directory: Path) -> dict:
    """The digests earlier runs saved; a damaged file only costs hashing the files again."""
    path = directory / DIGESTS
    if not path.is_file():
        return {}
    try:
        known = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        log.warning("%s: unreadable (%s); hashing the corpus files again", path, e)
        return {}
    if not isinstance(known, dict):
        log.warning("%s: not a digest table; hashing the corpus files again", path)
        return {}
    return known


def remember_digests(directory: Path, known: dict) -> None:
    """Save the digests for the next run (atomically: ranks may do it at once)."""
    tmp = temporary_path(directory / DIGESTS)
    try:
        tmp.write_text(json.dumps(known, indent=0) + "\n")
        tmp.replace(directory / DIGESTS)
    except OSError:  # only a speed-up is lost; the cache itself reports a full disk
        tmp.unlink(missing_ok=True)


def fingerprint(cfg: DataConfig, tokenizer: Tokenizer | None = None) -> str:
    """Hash of the split files' bytes (a Hub dataset's own fingerprint) and of every setting
    that changes the subword model or the encoding (a given tokenizer's models among them):
    no text is decoded to compute it."""
    directory = cache_dir(cfg)
    known = known_digests(directory)
    before = json.dumps(known)
    h = hashlib.sha256()
    settings = [CACHE_VERSION, cfg.src_lang, cfg.tgt_lang, cfg.train_limit]
    settings += [cfg.vocab_size, cfg.subword_type.value, cfg.joint_vocab, cfg.spm_sample]
    settings += [cfg.dedup]
    if tokenizer is not None:  # a parent model's, not one trained on this text
        models = tokenizer.to_dict()
        settings.append([hashlib.sha256(models[side]).hexdigest() for side in ("src", "tgt")])
    if cfg.directions:  # only then: a single direction's caches keep their names
        settings.append(cfg.directions)
        if cfg.dedup:  # told apart from the caches whose dedup dropped other directions' pairs
            settings.append("dedup by direction")
    h.update(json.dumps(settings).encode())
    for split in SPLITS:
        for source in split_sources(cfg, split):
            h.update(f"\0{split}\0{source.format.value}\0".encode())
            files = source_files(source, split)
            if files is None:
                h.update(hub_fingerprint(source, split).encode())
            for path in files or []:
                h.update(file_digest(path, known).encode())
    if json.dumps(known) != before:
        directory.mkdir(parents=True, exist_ok=True)
        remember_digests(directory, known)
    return h.hexdigest()[:16]


def small_part_digests(directory: Path) -> dict[str, str]:
    """sha256 of every file of the parts read whole at each start (the subword models, the
    held-out splits), by path within directory. The large training split is checked by
    structure instead (corpus.checked): hashing it would read gigabytes at every start."""
    files = [directory / "src.model", directory / "tgt.model", directory / COUNTS]
    files += sorted(p for split in ("valid", "test") for p in (directory / split).rglob("*"))
    return {str(path.relative_to(directory)): sha256_file(path) for path in files if path.is_file()}


TEXT = datasets.Features({"src": datasets.Value("string"), "tgt": datasets.Value("string")})
SOURCE = datasets.Features({"source": datasets.Value("uint16")})  # which training corpus


def text_rows(cfg: DataConfig, split: str) -> Iterator[dict]:
    for k, source in enumerate(split_sources(cfg, split)):
        for src, tgt in iter_split(source, split):
            yield {"src": src, "tgt": tgt, "source": k}


def text_dataset(cfg: DataConfig, split: str, scratch: Path) -> datasets.Dataset:
    """A split's raw pairs (the training corpora one after the other, each pair marked with
    its corpus) as an Arrow dataset on disk, written while they are read."""
    for source in split_sources(cfg, split):
        if next(iter_split(source, split), None) is None:  # datasets cannot make an empty one
            raise empty_split(source, split)
    try:
        ds = datasets.Dataset.from_generator(
            text_rows,
            features=datasets.Features({**TEXT, **SOURCE}),
            gen_kwargs={"cfg": cfg, "split": split},
            cache_dir=str(scratch),
        )
    except datasets.exceptions.DatasetGenerationError as e:
        # A bad line (its own one-line message) or a full disk, as if raised here.
        if isinstance(e.__cause__, (MTError, OSError)):
            raise e.__cause__ from None
        raise
    return ds


def unique_pairs(
    text: datasets.Dataset, scratch: Path, tags: list[str] | None = None
) -> datasets.Dataset:
    """The first occurrence of every (source, target) pair, in corpus order; with tags (the
    target language of each corpus mark), of every (tag, source, target)."""
    seen: set[bytes] = set()  # 16-byte digests: bounded memory for millions of pairs

    def first_time(rows: dict) -> list[bool]:
        keep = []
        marks = rows["source"] if tags else [None] * len(rows["src"])
        for src, tgt, mark in zip(rows["src"], rows["tgt"], marks, strict=True):
            # Another direction's identical pair (a name, a number) is another example: its
            # source carries another tag.
            key = f"{src}\t{tgt}" if mark is None else f"{tags[mark]}\t{src}\t{tgt}"
            digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
            keep.append(digest not in seen)
            seen.add(digest)
        return keep

    kept = text.filter(
        first_time, batched=True, batch_size=10_000, cache_file_name=str(scratch / "kept.arrow")
    )
    # Rewritten whole, so sentences() can read the files as they lie.
    return kept.flatten_indices(cache_file_name=str(scratch / "unique.arrow"))


def sentences(ds: datasets.Dataset, *columns: str, direction: int | None = None) -> Iterator[str]:
    """The named columns' text, one column after the other (only the pairs of one direction,
    its corpus mark, if given). Read from the dataset's files with plain reads: through its
    memory map, every page passed over would stay resident in this process while
    sentencepiece trains."""
    assert ds._indices is None, "a selection: flatten_indices() first"
    for column in columns:
        for cache_file in ds.cache_files:
            with pa.OSFile(cache_file["filename"]) as f:
                for batch in pa.ipc.open_stream(f):
                    texts = batch.column(column).to_pylist()
                    if direction is not None:
                        marks = batch.column("source").to_numpy()
                        kept = zip(texts, marks, strict=True)
                        texts = [text for text, mark in kept if mark == direction]
                    yield from texts


def language_sentences(cfg: DataConfig, train: datasets.Dataset) -> Iterator[str]:
    """A multilingual run's training text for its one sentencepiece model, sampled evenly by
    language: each language's sentences from one direction that has it (English is on one
    side of most), each language cut to the count of the one with fewest."""
    marks = np.bincount(train.data.table.column("source").to_numpy(), minlength=len(cfg.directions))
    sides = {}
    for k, direction in enumerate(cfg.directions):
        for column, lang in zip(("src", "tgt"), direction.split("-"), strict=True):
            sides.setdefault(lang, (column, k))
    count = min(int(marks[k]) for _, k in sides.values())
    for column, k in sides.values():
        yield from itertools.islice(sentences(train, column, direction=k), count)


def train_tokenizer(cfg: DataConfig, train: datasets.Dataset) -> Tokenizer:
    if cfg.directions:
        model = train_sentencepiece(language_sentences(cfg, train), cfg)
        return Tokenizer(model, model)
    if cfg.joint_vocab:
        model = train_sentencepiece(sentences(train, "src", "tgt"), cfg)
        return Tokenizer(model, model)
    src, tgt = (train_sentencepiece(sentences(train, side), cfg) for side in ("src", "tgt"))
    return Tokenizer(src, tgt)


def encode(rows: dict, tokenizer: Tokenizer, tags: list[str] | None) -> dict:
    """A batch of pairs' ids; with tags (a multilingual run: the target language of each
    corpus mark), each source starts with its target's tag."""
    if tags is None:
        src = tokenizer.encode_src(rows["src"])
    else:
        tag_ids = [tokenizer.tag_id(lang) for lang in tags]
        plain = tokenizer.encode_src(rows["src"])
        src = [[tag_ids[mark], *ids] for mark, ids in zip(rows["source"], plain, strict=True)]
    return {"src_ids": src, "tgt_ids": tokenizer.encode_tgt(rows["tgt"])}


def encode_split(
    cfg: DataConfig, tokenizer: Tokenizer, text: datasets.Dataset, split: str, scratch: Path
) -> datasets.Dataset:
    """The split's ids, encoded on disk (in data.num_proc processes). Training text is never
    scored: the training split keeps its ids and corpus marks, the others their text."""
    ids = datasets.Sequence(datasets.Value(id_type(tokenizer)))
    columns = {"src_ids": ids, "tgt_ids": ids}
    kept = SOURCE if split == "train" else TEXT
    tags = None
    if cfg.directions:  # held-out pairs keep their direction too, to be scored by it
        tags = [source.tgt_lang for source in split_sources(cfg, split)]
        kept = datasets.Features({**kept, **SOURCE})
    return text.map(
        encode,
        fn_kwargs={"tokenizer": tokenizer, "tags": tags},
        batched=True,
        batch_size=2000,
        num_proc=cfg.num_proc if cfg.num_proc > 1 else None,
        remove_columns=[c for c in text.column_names if c not in kept],
        features=datasets.Features({**kept, **columns}),
        cache_file_name=str(scratch / f"{split}-ids.arrow"),
    )


def id_type(tokenizer: Tokenizer) -> str:
    """The smallest Arrow integer type that holds every id: the mapped training split is read
    at random, and each byte saved is a byte less of it resident."""
    return "uint16" if max(tokenizer.src_vocab_size, tokenizer.tgt_vocab_size) <= 65536 else "int32"


def build_cache(cfg: DataConfig, directory: Path, tokenizer: Tokenizer | None = None) -> None:
    """Read every split, train the tokenizer (unless one is given), encode, and write it all
    atomically into directory; on the way everything is on disk, not in memory."""
    tmp = temporary_path(directory)
    scratch = tmp / "scratch"
    try:
        tmp.mkdir()
        text = {split: text_dataset(cfg, split, scratch) for split in SPLITS}
        read = len(text["train"])
        if cfg.dedup:
            tags = [s.tgt_lang for s in split_sources(cfg, "train")] if cfg.directions else None
            text["train"] = unique_pairs(text["train"], scratch, tags)
        counts = {"train_pairs_read": read, "duplicates_dropped": read - len(text["train"])}
        (tmp / COUNTS).write_text(json.dumps(counts) + "\n")
        tokenizer = tokenizer or train_tokenizer(cfg, text["train"])
        (tmp / "src.model").write_bytes(tokenizer.src_model)
        (tmp / "tgt.model").write_bytes(tokenizer.tgt_model)
        for split in SPLITS:
            encode_split(cfg, tokenizer, text[split], split, scratch).save_to_disk(str(tmp / split))
        del text
        shutil.rmtree(scratch)
        (tmp / CHECKSUMS).write_text(json.dumps(small_part_digests(tmp), indent=0) + "\n")
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
