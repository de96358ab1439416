"""`python -m mt.distill checkpoint=[A.pt,B.pt,C.pt] out=DIR`: the corpus of sequence-level
knowledge distillation (Kim & Rush, 2016), the teacher's training sources translated by the
teacher with beam search, for a student to train on.

The teacher is a checkpoint, an ensemble [A,B,C], or a CTranslate2 export (engine=ctranslate2
model_dir=DIR: the fastest). Its own training corpus is read (data_root= where it lies now),
or any other source file (input=FILE). The sources are decoded in shards of shard_lines lines,
each written whole into OUT/shards/ (a temporary name, renamed when complete). Before the
first shard, OUT/distilling.json records what makes them: the teacher's files and the input
by sha256, the decode settings and the shard size. A rerun with the same record skips the
shards that exist, so a killed distillation continues where it stopped; a rerun with another
is refused, so one corpus never mixes two teachers. When every shard is there (each with as
many lines as its sources), OUT/train.SRC.gz and OUT/train.TGT.gz (the corpus) and
OUT/distill.json (the record, counts, seconds) are written. A finished distillation is never
redone. A student trains on it alone or
beside the original pairs:

    python -m mt.train +experiment=transformer_fast \
        'data.train_sources=[{name: DIR_NAME, root: DIR_PARENT}]'

Examples:
    python -m mt.distill checkpoint=[a/final.pt,b/final.pt,c/final.pt] out=runs/kd
    python -m mt.distill engine=ctranslate2 model_dir=runs/tf/ct2 out=runs/kd decode.beam_size=5
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from mt.common.errors import reported
from mt.common.files import os_error
from mt.config.store import register_configs, tool_config, tool_main
from mt.config.tools import DistillConfig
from mt.training.distillation import distill

register_configs("distill", __doc__)


@tool_main("distill")
def main(cfg: DictConfig) -> None:
    with reported():
        config: DistillConfig = tool_config(cfg)
        try:
            finished = distill(config)
        except OSError as e:
            raise os_error(Path(config.out), e, "the distilled corpus") from None
        print(f"{finished['pairs']} pairs in {config.out}", flush=True)


if __name__ == "__main__":
    main()
