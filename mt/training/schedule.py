"""How long a training runs: the learning-rate schedule, the limits that end it (steps,
epochs, minutes, patience) and the time left until the first of them."""

from __future__ import annotations

import math

from mt.config.schema import TrainerConfig
from mt.training.state import Progress


def inverse_sqrt_schedule(warmup_steps: int):
    """LR factor: linear warm-up to 1 over warmup_steps, then decay with 1/sqrt(step)."""

    def factor(step: int) -> float:
        step += 1  # LambdaLR starts counting at 0; the first update should already move
        return min(step / warmup_steps, math.sqrt(warmup_steps / step))

    return factor


def limit_reached(settings: TrainerConfig, progress: Progress) -> str | None:
    """Which configured limit the training has reached, in words; None while none has."""
    if settings.max_steps is not None and progress.step >= settings.max_steps:
        return f"reached trainer.max_steps={settings.max_steps}"
    if settings.max_epochs is not None and progress.epoch >= settings.max_epochs:
        return f"reached trainer.max_epochs={settings.max_epochs}"
    if settings.max_minutes is not None and progress.train_seconds >= settings.max_minutes * 60:
        return f"reached trainer.max_minutes={settings.max_minutes}"
    if settings.patience is not None and progress.bad_validations >= settings.patience:
        return f"no BLEU improvement in {settings.patience} validations"
    return None


def eta_seconds(
    settings: TrainerConfig,
    progress: Progress,
    batches_per_epoch: int,
    batches_done: int,
    seconds_per_step: float,
) -> float:
    """Seconds until the first limit, at seconds_per_step."""
    left = []
    if settings.max_steps is not None:
        left.append((settings.max_steps - progress.step) * seconds_per_step)
    if settings.max_epochs is not None:
        batches = (settings.max_epochs - progress.epoch) * batches_per_epoch - batches_done
        left.append(batches / settings.accumulate * seconds_per_step)
    if settings.max_minutes is not None:
        left.append(settings.max_minutes * 60 - progress.train_seconds)
    return max(min(left), 0.0)
