"""What resuming a training needs besides the model's shape: its position, the optimizer,
the schedule and every rank's random state, written to and read from checkpoints."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from mt.common.checkpoint import check_vocabulary, load_weights
from mt.common.runtime import source_commit
from mt.config.schema import Config
from mt.config.store import current_names, to_plain_dict
from mt.training import distributed

log = logging.getLogger("mt")


@dataclass
class Progress:
    """Everything besides weights and optimizer that resuming needs."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of this epoch already trained on
    best_bleu: float = -1.0
    bad_validations: int = 0  # validations since BLEU last improved
    train_seconds: float = 0.0  # time spent in training steps (validation excluded)
    train_tokens: int = 0  # target tokens trained on
    commits: list[str | None] = field(default_factory=list)  # the code of each stretch
    # The batching the run's epochs are cut with (StepPlan.fixed_shapes): a resumed run keeps
    # it, so an epoch is never re-batched halfway (None: a checkpoint from before this).
    fixed_shapes: bool | None = None


def record_commit(progress: Progress) -> None:
    """Add the running code's commit to a resumed run's, when it differs from the last
    stretch's."""
    commit = source_commit()
    if progress.commits[-1:] == [commit]:
        return
    if progress.commits and distributed.is_main():
        log.info("resumed under commit %s; trained under %s before", commit, progress.commits[-1])
    progress.commits.append(commit)


@dataclass
class TrainState:
    """The parts of a training that change from step to step."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    progress: Progress


def random_state(device: torch.device) -> dict:
    """This process's random state (the CPU generator's, and the GPU's when training on one)."""
    rng = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    return rng


def checkpoint_payload(config: Config, text_side: dict, state: TrainState, rng: list[dict]) -> dict:
    """Everything to resume from; text_side holds the tokenizer (and the languages' profiles);
    rng holds every rank's random state, in rank order."""
    return {
        "config": to_plain_dict(config),
        **text_side,
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(),
        "progress": asdict(state.progress),
        "rng": rng,
    }


def flat(settings: dict, prefix: str = "") -> dict:
    """{"trainer": {"lr": 1}} -> {"trainer.lr": 1}."""
    found = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            found.update(flat(value, f"{prefix}{key}."))
        else:
            found[f"{prefix}{key}"] = value
    return found


def changed_settings(before: dict, now: dict) -> list[str]:
    """`key: old -> new` for every setting a resumed run changes (trainer.resume aside)."""
    old, new = flat(before), flat(now)
    keys = sorted((old.keys() | new.keys()) - {"trainer.resume"})
    return [f"{k}: {old.get(k)} -> {new.get(k)}" for k in keys if old.get(k) != new.get(k)]


def restore(
    path: Path,
    payload: dict,
    tokenizer_models: dict,
    state: TrainState,
    device: torch.device,
    config: Config,
) -> None:
    """Load the checkpoint payload (read from path) into state and set this rank's random
    state from it. Settings changed since the checkpoint are logged and take effect: the
    optimizer's and the schedule's are set again from config after their saved state is
    loaded."""
    check_vocabulary(payload, tokenizer_models, path)
    load_weights(state.model, payload["model"], path)
    changes = changed_settings(current_names(payload["config"]), to_plain_dict(config))
    if changes and distributed.is_main():
        log.warning("resumed with changed settings (the new values apply): %s", "; ".join(changes))
    state.optimizer.load_state_dict(payload["optimizer"])
    state.scheduler.load_state_dict(payload["scheduler"])
    reapply(state, config)
    state.progress = Progress(**payload["progress"])
    record_commit(state.progress)
    states = payload["rng"]
    if isinstance(states, dict):  # written before checkpoints kept one state per rank
        states = [states]
    # This rank's own state when the world size is unchanged, else rank 0's.
    rng = states[distributed.rank()] if len(states) == distributed.world_size() else states[0]
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and device.type == "cuda":
        torch.cuda.set_rng_state(rng["cuda"], device)
    log.info("resumed from %s at step %d", path, state.progress.step)


def reapply(state: TrainState, config: Config) -> None:
    """config's optimizer settings over those a loaded state brought back (the same unless
    the resumed run changed them): learning rate, Adam betas, weight decay."""
    t, scheduler = config.trainer, state.scheduler
    scheduler.base_lrs = [t.lr] * len(state.optimizer.param_groups)
    factor = scheduler.lr_lambdas[0](scheduler.last_epoch)
    for group in state.optimizer.param_groups:
        group.update(lr=t.lr * factor, betas=tuple(t.adam_betas), weight_decay=t.weight_decay)


def keep_batching(progress: Progress, planned: bool) -> None:
    """A new run records its batching (planned: StepPlan.fixed_shapes); a resumed one keeps
    what it began with, whatever this device would choose, so its epochs are cut the same
    way."""
    if progress.fixed_shapes is None:
        progress.fixed_shapes = planned
    elif progress.fixed_shapes != planned:
        log.warning(
            "resumed with data.fixed_shapes=%s, as this run began; this device and these "
            "settings would choose %s",
            progress.fixed_shapes,
            planned,
        )
