"""`python -m mt.distill checkpoint=[A.pt,B.pt,C.pt] out=DIR`: the corpus of sequence-level
knowledge distillation (Kim & Rush, 2016), the teacher's training sources translated by the
teacher with beam search, for a student to train on.

The teacher is a checkpoint, an ensemble [A,B,C], or a CTranslate2 export (engine=ctranslate2
model_dir=DIR: the fastest). Its own training corpus is read (data_root= where it lies now),
or any other source file (input=FILE). The sources are decoded in shards of shard_lines lines,
each written whole into OUT/shards/ (a temporary name, renamed when complete). A rerun skips
the shards that exist, so a killed distillation continues where it stopped. When every shard
is there, OUT/train.SRC.gz and OUT/train.TGT.gz (the corpus) and OUT/distill.json (teacher,
settings, counts, seconds) are written. A finished distillation is never redone, and a
different teacher or setting for the same OUT is refused. A student trains on it alone or
beside the original pairs:

    python -m mt.train +experiment=transformer_fast \
        'data.train_sources=[{name: DIR_NAME, root: DIR_PARENT}]'
"""

from __future__ import annotations

import gzip
import itertools
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from mt.common.errors import MTError, reported
from mt.common.files import (
    os_error,
    remove_stale_temporaries,
    replaced_on_success,
    sha256_file,
)
from mt.common.ranges import check_ranges
from mt.config.store import config_dir, register_configs, to_object
from mt.config.tools import DistillConfig, model_source
from mt.data.readers import iter_lines, iter_split
from mt.decoding.translator import Translator
from mt.deploy.engine import open_translator

register_configs()
DONE = "distill.json"


def say(line: str) -> None:
    """Progress on stderr (the tools set up no logging: stdout may carry results)."""
    print(line, file=sys.stderr, flush=True)


def sources(translator: Translator, cfg: DistillConfig) -> tuple[Iterator[str], str, str]:
    """The source lines to distil, their language and the teacher's target language."""
    data = translator.config.data
    if cfg.data_root is not None:
        data.root = cfg.data_root
    if cfg.input is not None:
        return iter_lines(Path(cfg.input)), data.src_lang, data.tgt_lang
    return (src for src, _ in iter_split(data, "train")), data.src_lang, data.tgt_lang


def shard_path(out: Path, index: int, lang: str) -> Path:
    return out / "shards" / f"{index:06d}.{lang}"


def distil_shards(translator: Translator, cfg: DistillConfig, lines: Iterator[str], tgt: str):
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


def teacher_record(cfg: DistillConfig, models: list[Path]) -> dict:
    """What identifies a distillation: the teacher's files (by sha256) and the settings."""
    files = sorted(p for m in models for p in ([m] if m.is_file() else sorted(m.iterdir())))
    return {
        "teacher": {str(path): sha256_file(path) for path in files},
        "engine": cfg.engine.value,
        "input": cfg.input,
        "decode": {k: v for k, v in vars(cfg.decode).items() if v is not None},
        "shard_lines": cfg.shard_lines,
    }


def assemble(out: Path, shards: int, src_lang: str, tgt_lang: str, lines: Iterator[str]) -> int:
    """The corpus from the shards: OUT/train.SRC.gz (the sources) and OUT/train.TGT.gz."""
    count = 0
    with replaced_on_success(out / f"train.{src_lang}.gz") as src_tmp:
        with gzip.open(src_tmp, "wt", encoding="utf-8") as src:
            for line in lines:
                src.write(line + "\n")
                count += 1
    with replaced_on_success(out / f"train.{tgt_lang}.gz") as tgt_tmp:
        with gzip.open(tgt_tmp, "wt", encoding="utf-8") as tgt:
            for index in range(shards):
                tgt.write(shard_path(out, index, tgt_lang).read_text("utf-8"))
    return count


def distil(cfg: DistillConfig) -> dict:
    """Decode what is missing, assemble the corpus once, and return what distill.json says."""
    _, models = model_source(cfg.checkpoint, cfg.engine, cfg.model_dir)
    out = Path(cfg.out)
    record = teacher_record(cfg, models)
    done = out / DONE
    if done.is_file():
        finished = json.loads(done.read_text("utf-8"))
        if {k: finished.get(k) for k in record} != record:
            raise MTError(f"out={out}: distilled by another teacher or other settings ({done})")
        say(f"{out}: already distilled ({finished['pairs']} pairs); nothing to do")
        return finished
    if out.is_dir() and not (out / "shards").is_dir() and any(out.iterdir()):
        raise MTError(f"out={out} holds other files: give a new or empty directory")
    translator = open_translator(cfg.engine, models, cfg.device)
    started = time.monotonic()
    lines, src_lang, tgt_lang = sources(translator, cfg)
    shards = distil_shards(translator, cfg, lines, tgt_lang)
    pairs = assemble(out, shards, src_lang, tgt_lang, sources(translator, cfg)[0])
    seconds = time.monotonic() - started
    finished = {**record, "pairs": pairs, "shards": shards, "seconds": seconds}
    finished["threads"] = torch.get_num_threads()  # the seconds depend on them
    with replaced_on_success(done) as tmp:
        tmp.write_text(json.dumps(finished, indent=2) + "\n", "utf-8")
    return finished


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="distill")
def main(cfg: DictConfig) -> None:
    with reported():
        config: DistillConfig = to_object(cfg)
        check_ranges(config, "")
        check_ranges(config.decode, "decode.")
        try:
            finished = distil(config)
        except OSError as e:
            raise os_error(Path(config.out), e, "the distilled corpus") from None
        print(f"{finished['pairs']} pairs in {config.out}", flush=True)


if __name__ == "__main__":
    main()
