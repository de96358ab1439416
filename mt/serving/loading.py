"""The models a server holds: each checkpoint loaded once, under a label unique among them."""

from __future__ import annotations

from pathlib import Path

from mt.common.errors import MTError
from mt.config.tools import ServeConfig
from mt.decoding.translator import Translator
from mt.serving.app import Served


def model_label(path: Path) -> str:
    """runs/tf/checkpoints/best.pt -> "tf"; model.pt -> "model"."""
    return path.parent.parent.name if path.parent.name == "checkpoints" else path.stem


def unique_labels(paths: list[Path]) -> list[str]:
    labels = [model_label(p) for p in paths]
    return [
        label if labels.count(label) == 1 else f"{label}-{labels[:k].count(label) + 1}"
        for k, label in enumerate(labels)
    ]


def load_models(config: ServeConfig) -> list:
    """Every checkpoint, loaded once, as a served model."""
    paths = [Path(p) for p in ([config.checkpoint] if config.checkpoint else [])]
    paths += [Path(p) for p in config.checkpoints]
    if not paths:
        raise MTError("checkpoint=PATH or checkpoints=[A.pt,B.pt]: no model to serve")
    return [
        Served(name, str(path), Translator.from_checkpoint(path, config.device))
        for path, name in zip(paths, unique_labels(paths), strict=True)
    ]
