"""Sequence-level knowledge distillation (Kim & Rush, 2016): the teacher's training sources
(or any source file) translated by the teacher with beam search, for a student to train on.
The sources are decoded in shards, each written whole; OUT/distilling.json, written before
the first shard, records what makes them, so a killed distillation continues where it
stopped and a rerun with another teacher or settings is refused (mt.distill)."""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from mt.common.errors import MTError
from mt.common.files import remove_stale_temporaries, replaced_on_success, sha256_file
from mt.config.tools import DistillConfig, model_source
from mt.data.readers import iter_lines, iter_split
from mt.decoding.translator import Translator
from mt.deploy.engine import open_translator

DONE, RECORD = "distill.json", "distilling.json"


def say(line: str) -> None:
    """Progress on stderr (the tools set up no logging: stdout may carry results)."""
    print(line, file=sys.stderr, flush=True)


def sources(translator: Translator, cfg: DistillConfig) -> tuple[Iterator[str], str, str]:
    """The source lines to distill, their language and the teacher's target language."""
    data = translator.config.data
    if cfg.data_root is not None:
        data.root = cfg.data_root
    if cfg.input is not None:
        return iter_lines(Path(cfg.input)), data.src_lang, data.tgt_lang
    return (src for src, _ in iter_split(data, "train")), data.src_lang, data.tgt_lang


def shard_path(out: Path, index: int, lang: str) -> Path:
    return out / "shards" / f"{index:06d}.{lang}"


def distill_shards(translator: Translator, cfg: DistillConfig, lines: Iterator[str], tgt: str):
    """Decode every shard that is not on disk yet; returns the number of shards."""
    decode = translator.decoding(cfg.decode)
    out = Path(cfg.out)
    (out / "shards").mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out / "shards")  # a shard a kill interrupted: decoded again
    index = 0
    while shard := list(itertools.islice(lines, cfg.shard_lines)):
        path = shard_path(out, index, tgt)
        if not path.is_file():
            started = time.monotonic()
            outputs = translator.translate_nbest(shard, decode, index * cfg.shard_lines + 1)
            with replaced_on_success(path) as tmp:
                tmp.write_text("".join(nbest[0][0] + "\n" for nbest in outputs), "utf-8")
            seconds = time.monotonic() - started
            say(f"shard {index}: {len(shard)} lines in {seconds:.1f} s")
        index += 1
    return index


def teacher_record(cfg: DistillConfig, models: list[Path], lines: Iterator[str]) -> dict:
    """What identifies a distillation: the teacher's files and the input lines (by sha256),
    the engine and the decode settings, and the shard size."""
    files = sorted(p for m in models for p in ([m] if m.is_file() else sorted(m.iterdir())))
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode("utf-8") + b"\n")
    record = {
        "teacher": {str(path): sha256_file(path) for path in files},
        "engine": cfg.engine.value,
        "input": cfg.input,
        "input_sha256": digest.hexdigest(),
        "decode": cfg.decode.given(),
        "shard_lines": cfg.shard_lines,
    }
    return json.loads(json.dumps(record))  # as it reads back from a file


def begin(out: Path, record: dict) -> None:
    """OUT/distilling.json, written before the first shard; the shards of a rerun with
    another record are refused, never mixed into one corpus."""
    path = out / RECORD
    if path.is_file():
        if read_record(path) != record:
            raise MTError(
                f"out={out}: its shards were made by another teacher, input or settings "
                f"({path}); give another out= or delete {out} to start over"
            )
        return
    if out.is_dir() and any(out.iterdir()):
        raise MTError(f"out={out} holds other files: give a new or empty directory")
    out.mkdir(parents=True, exist_ok=True)
    with replaced_on_success(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n", "utf-8")


def read_record(path: Path) -> dict:
    """A distillation's record (distilling.json, distill.json), or one line naming the file."""
    try:
        found = json.loads(path.read_text("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MTError(f"{path}: not a distillation record ({e})") from None
    if not isinstance(found, dict):
        raise MTError(f"{path}: not a distillation record (not a JSON object)")
    return found


def assemble(out: Path, cfg: DistillConfig, shards: int, langs: tuple, lines) -> int:
    """The corpus from the shards: OUT/train.SRC.gz (the sources) and OUT/train.TGT.gz; a
    shard with another number of lines than its sources is refused, naming it."""
    src_lang, tgt_lang = langs
    count = 0
    with replaced_on_success(out / f"train.{src_lang}.gz") as src_tmp:
        with gzip.open(src_tmp, "wt", encoding="utf-8") as src:
            for line in lines:
                src.write(line + "\n")
                count += 1
    with replaced_on_success(out / f"train.{tgt_lang}.gz") as tgt_tmp:
        with gzip.open(tgt_tmp, "wt", encoding="utf-8") as tgt:
            for index in range(shards):
                path = shard_path(out, index, tgt_lang)
                text = path.read_text("utf-8")
                expected = min(cfg.shard_lines, count - index * cfg.shard_lines)
                if text.count("\n") != expected or not text.endswith("\n"):
                    raise MTError(
                        f"{path}: {text.count(chr(10))} lines for {expected} sources; delete "
                        "it to decode it again"
                    )
                tgt.write(text)
    return count


def distill(cfg: DistillConfig) -> dict:
    """Decode what is missing, assemble the corpus once, and return what distill.json says."""
    _, models = model_source(cfg.checkpoint, cfg.engine, cfg.model_dir)
    out = Path(cfg.out)
    translator = open_translator(cfg.engine, models, cfg.device)  # a missing one: named
    lines, src_lang, tgt_lang = sources(translator, cfg)
    record = teacher_record(cfg, models, lines)
    done = out / DONE
    if done.is_file():
        finished = read_record(done)
        if {k: finished.get(k) for k in record} != record:
            raise MTError(f"out={out}: distilled by another teacher or other settings ({done})")
        say(f"{out}: already distilled ({finished['pairs']} pairs); nothing to do")
        return finished
    begin(out, record)
    started = time.monotonic()
    shards = distill_shards(translator, cfg, sources(translator, cfg)[0], tgt_lang)
    langs = (src_lang, tgt_lang)
    pairs = assemble(out, cfg, shards, langs, sources(translator, cfg)[0])
    seconds = time.monotonic() - started
    finished = {**record, "pairs": pairs, "shards": shards, "seconds": seconds}
    finished["threads"] = torch.get_num_threads()  # the seconds depend on them
    with replaced_on_success(done) as tmp:
        tmp.write_text(json.dumps(finished, indent=2) + "\n", "utf-8")
    return finished
