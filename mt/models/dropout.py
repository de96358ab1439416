"""Dropout that is cheap on the CPU, for every model and for the Transformer's attention.

torch's CPU dropout draws one 32-bit number per element (bernoulli_): on a 2-core CPU it was
27% of a Transformer training step in bf16 (scripts/bench_step.py profile). Here one 64-bit draw
decides four elements through its four 16-bit lanes, about 4 times fewer draws, and the mask is
applied by one fused kernel each way. The drop probability is p rounded to 1/65536. Other
devices keep torch's own dropout (on CUDA it is already fused and cheap).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LANES = 4  # 16-bit lanes in one 64-bit draw
LANE_VALUES = 1 << 16


def keep_mask(shape: torch.Size, p: float, device: torch.device) -> torch.Tensor:
    """A bool tensor of `shape`, each element False (dropped) with probability ≈ p."""
    count = math.prod(shape)
    draws = torch.empty((count + LANES - 1) // LANES, dtype=torch.int64, device=device)
    draws.random_(-(2**63), None)  # every 64-bit value, so each 16-bit lane is uniform
    lanes = draws.view(torch.int16)[:count]  # uniform over [-32768, 32767]
    return (lanes >= round(p * LANE_VALUES) - LANE_VALUES // 2).view(shape)


class _ScaleKept(torch.autograd.Function):
    """x * keep / (1 - p), and the same on the way back: the mask is all it saves."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(keep)
        ctx.scale = scale
        # aten's dropout backward is exactly x * keep * scale, in one kernel.
        return torch.ops.aten.native_dropout_backward(x, keep, scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (keep,) = ctx.saved_tensors
        return torch.ops.aten.native_dropout_backward(grad, keep, ctx.scale), None, None


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """F.dropout's contract: zero each element with probability p, scale the rest by 1/(1-p)."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p == 1.0:
        return F.dropout(x, p, training=True)
    return _ScaleKept.apply(x, keep_mask(x.shape, p, x.device), 1.0 / (1.0 - p))


class Dropout(nn.Dropout):
    """nn.Dropout through `dropout`: the same module, cheaper on the CPU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)
