"""The models a server holds: each checkpoint or export loaded once, under a label unique
among them, with its own batching queue."""

from __future__ import annotations

from pathlib import Path

from mt.common.errors import MTError
from mt.config.tools import ServeConfig
from mt.decoding.translator import Translator
from mt.deploy.engine import ctranslate2_translator
from mt.serving.app import Served
from mt.serving.batcher import Batcher


def model_label(path: Path) -> str:
    """runs/tf/checkpoints/best.pt -> "tf"; model.pt -> "model"; exports/tf-int8 -> "tf-int8"."""
    if path.is_dir():
        return path.name
    return path.parent.parent.name if path.parent.name == "checkpoints" else path.stem


def unique_labels(paths: list[Path]) -> list[str]:
    labels = [model_label(p) for p in paths]
    return [
        label if labels.count(label) == 1 else f"{label}-{labels[:k].count(label) + 1}"
        for k, label in enumerate(labels)
    ]


def load_models(config: ServeConfig) -> list[Served]:
    """Every checkpoint or export directory, loaded once, as a served model."""
    paths = [Path(p) for p in ([config.checkpoint] if config.checkpoint else [])]
    paths += [Path(p) for p in config.checkpoints]
    if not paths:
        raise MTError("checkpoint=PATH or checkpoints=[A.pt,B.pt]: no model to serve")
    served = []
    for path, name in zip(paths, unique_labels(paths), strict=True):
        exported = path.is_dir()  # mt.export writes a directory, training a file
        if exported:
            translator = ctranslate2_translator(path, config.device)
        else:
            translator = Translator.from_checkpoint(path, config.device)
        batcher = Batcher(translator, config.batch_tokens, config.max_queued, config.batching)
        engine = "ctranslate2" if exported else "torch"
        served.append(Served(name, str(path), engine, translator, batcher))
    return served
