"""Dropout that is cheap on the CPU, for every model and for the Transformer's attention.

torch's CPU dropout draws one 32-bit number per element (bernoulli_): on a 2-core CPU it was
27% of a Transformer training step in bf16 (scripts/bench_step.py profile). Here one 64-bit draw
decides four elements through its four 16-bit lanes, about 4 times fewer draws. The mask is
written in the input's dtype, 1 for kept and 0 for dropped: a bool mask costs a conversion to
that dtype, a pass of its own, in every multiply on the CPU (docs/performance.md). The drop
probability is p rounded to 1/65536. Other devices keep torch's own dropout (on CUDA it
is already fused and cheap).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LANES = 4  # 16-bit lanes in one 64-bit draw
LANE_VALUES = 1 << 16


def keep_mask(
    shape: torch.Size, p: float, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """A `dtype` tensor of `shape`: 0 (dropped) with probability ≈ p, else 1."""
    count = math.prod(shape)
    draws = torch.empty((count + LANES - 1) // LANES, dtype=torch.int64, device=device)
    draws.random_(-(2**63), None)  # every 64-bit value, so each 16-bit lane is uniform
    lanes = draws.view(torch.int16)[:count].view(shape)  # uniform over [-32768, 32767]
    keep = torch.empty(shape, dtype=dtype, device=device)
    return torch.ge(lanes, round(p * LANE_VALUES) - LANE_VALUES // 2, out=keep)


def scaled(x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
    """x * keep * scale, rounded as aten's dropout rounds it: x * keep is exact."""
    out = torch.mul(x, keep)
    return out if scale == 1.0 else out.mul_(scale)


class _ScaleKept(torch.autograd.Function):
    """x * keep / (1 - p), and the same on the way back: the mask is all it saves."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return scaled(x, keep, scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (keep,) = ctx.saved_tensors
        return scaled(grad, keep, ctx.scale), None, None


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """F.dropout's contract: zero each element with probability p, scale the rest by 1/(1-p)."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p == 1.0:
        return F.dropout(x, p, training=True)
    keep, scale = keep_mask(x.shape, p, x.device, x.dtype), 1.0 / (1.0 - p)
    if x.dtype == torch.float32:
        # The mask carries the scale: one multiply each way, rounded as x * scale is (float32
        # holds the scale as a multiply by it would); a bf16 mask would round the scale itself.
        keep, scale = keep.mul_(scale), 1.0
    return _ScaleKept.apply(x, keep, scale)


class Dropout(nn.Dropout):
    """nn.Dropout through `dropout`: the same module, cheaper on the CPU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)
