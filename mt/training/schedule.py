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


def limit_reached(t: TrainerConfig, p: Progress) -> str | None:
    """Which configured limit the training has reached, in words; None while none has."""
    if t.max_steps is not None and p.step >= t.max_steps:
        return f"reached trainer.max_steps={t.max_steps}"
    if t.max_epochs is not None and p.epoch >= t.max_epochs:
        return f"reached trainer.max_epochs={t.max_epochs}"
    if t.max_minutes is not None and p.train_seconds >= t.max_minutes * 60:
        return f"reached trainer.max_minutes={t.max_minutes}"
    if t.patience is not None and p.bad_validations >= t.patience:
        return f"no BLEU improvement in {t.patience} validations"
    return None


def eta_seconds(
    t: TrainerConfig,
    p: Progress,
    batches_per_epoch: int,
    batches_done: int,
    seconds_per_step: float,
) -> float:
    """Seconds until the first limit, at seconds_per_step."""
    left = []
    if t.max_steps is not None:
        left.append((t.max_steps - p.step) * seconds_per_step)
    if t.max_epochs is not None:
        batches = (t.max_epochs - p.epoch) * batches_per_epoch - batches_done
        left.append(batches / t.accumulate * seconds_per_step)
    if t.max_minutes is not None:
        left.append(t.max_minutes * 60 - p.train_seconds)
    return max(min(left), 0.0)
