"""The training objective, shared by training steps and validation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mt.common.special_ids import PAD_ID


def token_loss(model: nn.Module, batch, label_smoothing: float) -> torch.Tensor:
    """Summed label-smoothed cross-entropy over the real target tokens."""
    logits = model(batch.src, batch.tgt_in)
    return F.cross_entropy(
        logits.flatten(0, 1).float(),
        batch.tgt_out.flatten(),
        ignore_index=PAD_ID,
        label_smoothing=label_smoothing,
        reduction="sum",
    )
