"""The training objective, shared by training steps and validation.

On the CPU the label-smoothed cross-entropy is one autograd function. F.cross_entropy's
backward fills a zero gradient for the target term, adds the smoothing term's to it and runs
log-softmax's backward over the result, each a pass over the (tokens, vocabulary) logits; here
the gradient is written once as p - q (softmax minus the smoothed target) and scaled in place.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mt.common.special_ids import PAD_ID


class _SmoothedCrossEntropy(torch.autograd.Function):
    """Summed -Σ_v q_v log p_v over rows whose target is not PAD_ID, where q puts 1 - ε on the
    target and ε spread evenly over the vocabulary (ε = smoothing): F.cross_entropy's loss."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, target: torch.Tensor, smoothing: float):
        log_probs = torch.log_softmax(logits, dim=-1)
        picked = log_probs.gather(1, target[:, None]).squeeze(1)
        rows = picked.mul(smoothing - 1.0)
        if smoothing:
            rows.sub_(log_probs.sum(-1), alpha=smoothing / logits.size(1))
        real = target != PAD_ID
        ctx.save_for_backward(log_probs, target, real)
        ctx.smoothing = smoothing
        return rows.mul_(real).sum()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        log_probs, target, real = ctx.saved_tensors
        smoothing = ctx.smoothing
        # d/dlogits = p - q, for each real row, times the incoming gradient.
        grad_logits = log_probs.exp()
        if smoothing:
            grad_logits.sub_(smoothing / log_probs.size(1))
        target_share = grad_logits.new_full((target.numel(), 1), smoothing - 1.0)
        grad_logits.scatter_add_(1, target[:, None], target_share)
        return grad_logits.mul_((grad * real)[:, None]), None, None


def torch_cross_entropy(logits: torch.Tensor, target: torch.Tensor, smoothing: float):
    """torch's summed label-smoothed cross-entropy over (N, V) logits, PAD_ID rows ignored."""
    return F.cross_entropy(
        logits, target, ignore_index=PAD_ID, label_smoothing=smoothing, reduction="sum"
    )


def smoothed_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, smoothing: float
) -> torch.Tensor:
    """torch_cross_entropy's value; on the CPU in fewer passes over the logits."""
    if logits.device.type != "cpu":
        return torch_cross_entropy(logits, target, smoothing)
    return _SmoothedCrossEntropy.apply(logits, target, smoothing)


def token_loss(model: nn.Module, batch, label_smoothing: float) -> torch.Tensor:
    """Summed label-smoothed cross-entropy over the real target tokens."""
    logits = model(batch.src, batch.tgt_in)
    return smoothed_cross_entropy(
        logits.flatten(0, 1).float(), batch.tgt_out.flatten(), label_smoothing
    )
