"""Starting a new run from a trained model (trainer.init_from): the parent's weights, model
shape and subword models; its optimizer moments and schedule only when asked (trainer.init_keep).
Step count, best score and early stopping always start afresh: it is a new run. Also
trainer.freeze, for adaptation studies: groups of parameters left untrained."""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields, replace
from pathlib import Path

from torch import nn

from mt.common.checkpoint import load_checkpoint, load_weights
from mt.common.errors import MTError
from mt.common.files import sha256_file
from mt.config.checks import parse
from mt.config.schema import Config, DataConfig
from mt.config.store import from_plain_dict
from mt.data.tokenizer import Tokenizer
from mt.models import model_name
from mt.training.state import TrainState, reapply

log = logging.getLogger("mt")
# What a run directory offers, in order of preference: the reported model, then the others;
# for a run that keeps the optimizer or schedule, the end of training (final.pt has neither).
RUN_CHECKPOINTS = ("final.pt", "best.pt", "last.pt")
STATE_CHECKPOINTS = ("last.pt", "best.pt")
KEPT_PARTS = {"optimizer": "optimizer", "schedule": "scheduler"}  # trainer.init_keep -> payload


def parent_path(init_from: str, keep: list[str]) -> Path:
    """A checkpoint file, or a run directory's (or its checkpoints/ folder's) best choice."""
    path = Path(init_from)
    names = STATE_CHECKPOINTS if keep else RUN_CHECKPOINTS
    if path.is_dir():
        for folder in (path / "checkpoints", path):
            found = [folder / name for name in names if (folder / name).is_file()]
            if found:
                return found[0]
        raise MTError(f"trainer.init_from={init_from}: no {', '.join(names)} in it")
    return path


@dataclass
class Parent:
    path: Path
    payload: dict
    origin: dict | None = None  # the first parent (results.json's "parent"): record() if None

    @classmethod
    def open(cls, init_from: str, keep: list[str]) -> Parent:
        path = parent_path(init_from, keep)
        payload = load_checkpoint(path)
        for part in (KEPT_PARTS[kept] for kept in keep):
            if part not in payload:
                raise MTError(
                    f"trainer.init_keep: {path} holds no {part} state (final.pt keeps the "
                    f"weights alone): give its run's last.pt or best.pt"
                )
        return cls(path, payload)

    @property
    def tokenizer(self) -> Tokenizer:
        return Tokenizer.from_dict(self.payload["tokenizer"])

    @property
    def config(self) -> Config:
        return from_plain_dict(self.payload["config"])

    @classmethod
    def resumed(cls, last: Path, payload: dict) -> Parent | None:
        """A run started from a parent, being resumed: its own last.pt (payload, read from
        last) gives the shape and the subword models (as init_from did), and its first parent
        stays the one on record."""
        return cls(last, payload, payload["parent"]) if payload.get("parent") else None

    def record(self) -> dict:
        """What results.json says of the parent: where it was, its bytes, its run's code."""
        if self.origin is not None:
            return self.origin
        commits = self.payload.get("progress", {}).get("commits") or [None]
        path = str(self.path.resolve())
        return {"path": path, "sha256": sha256_file(self.path), "commit": commits[-1]}


def kept_init_from(config: Config, payload: dict) -> Config:
    """A resumed child run (trainer.init_from left out, as resuming asks) keeps on record the
    init_from it started with, which its own last.pt holds."""
    started = payload["config"]["trainer"].get("init_from")
    if config.trainer.init_from or not started:
        return config
    return replace(config, trainer=replace(config.trainer, init_from=started))


def languages(data: DataConfig) -> set[str]:
    """Every language a run reads or writes."""
    if data.directions:
        return {lang for direction in data.directions for lang in parse(direction)}
    return {data.src_lang, data.tgt_lang}


def fitted(config: Config, parent: Parent) -> Config:
    """config with the parent's model shape. A shape key the run left at its default takes the
    parent's value; one set to something else is refused, naming it. Dropout is a training
    choice, the run's own. The data must be in languages the parent's subword model knows."""
    where = f"trainer.init_from={parent.path}"
    theirs = parent.config
    if type(theirs.model) is not type(config.model):
        raise MTError(
            f"{where}: a {model_name(theirs.model)} checkpoint, and this run's model is "
            f"{model_name(config.model)}: choose the parent's experiment"
        )
    default = type(config.model)()
    for key in (f.name for f in fields(config.model) if f.name != "dropout"):
        mine, parents = getattr(config.model, key), getattr(theirs.model, key)
        if mine != parents and mine != getattr(default, key):
            raise MTError(f"model.{key}={mine} contradicts {where}, whose model has {parents}")
    unknown = sorted(languages(config.data) - languages(theirs.data))
    if unknown:
        known = ", ".join(sorted(languages(theirs.data)))
        raise MTError(
            f"data: {', '.join(unknown)} is not among the languages of {where} ({known}): "
            f"its subword model and vocabulary were built for those"
        )
    return replace(config, model=replace(theirs.model, dropout=config.model.dropout))


def start_from(parent: Parent, state: TrainState, config: Config) -> None:
    """The parent's weights into state's model; its optimizer moments and its schedule's
    position too when trainer.init_keep names them; this run's settings over what they bring
    (learning rate, betas, weight decay)."""
    keep = config.trainer.init_keep
    load_weights(state.model, parent.payload["model"], parent.path)
    if "optimizer" in keep:
        state.optimizer.load_state_dict(parent.payload["optimizer"])
    if "schedule" in keep:
        state.scheduler.load_state_dict(parent.payload["scheduler"])
    reapply(state, config)
    log.info("started from %s (kept: %s)", parent.path, ", ".join(["weights", *keep]))


def in_group(name: str, group: str) -> bool:
    """Whether the parameter name is in trainer.freeze's group (mt.config.checks.FREEZABLE):
    any embedding table, else the module whose name the group is (encoder, decoder)."""
    return "embed" in name if group == "embeddings" else name.startswith(group)


def freeze(model: nn.Module, groups: list[str]) -> None:
    """Leave the named groups of parameters untrained (a tied output projection is the target
    embedding, so freezing embeddings freezes it too)."""
    for group in groups:
        matched = [p for name, p in model.named_parameters() if in_group(name, group)]
        if not matched:
            raise MTError(f"trainer.freeze: {type(model).__name__} has no {group} parameters")
        for parameter in matched:
            parameter.requires_grad_(False)
    if groups and not any(p.requires_grad for p in model.parameters()):
        raise MTError(f"trainer.freeze={groups}: leaves nothing of the model to train")


def lineage(config: Config, last: Path, resumed: dict | None) -> tuple[Parent | None, Config]:
    """The run this one starts from (trainer.init_from, or a resumed run's own last.pt) and
    the config fitted to it: its model shape and subword models."""
    settings = config.trainer
    if settings.init_from:
        parent = Parent.open(settings.init_from, settings.init_keep)
    else:
        parent = Parent.resumed(last, resumed) if resumed else None
    config = fitted(config, parent) if parent else config
    return parent, kept_init_from(config, resumed) if resumed else config
