"""The training objective's CPU function (mt/training/loss.py) against torch's own
label-smoothed cross-entropy, and the step's optimizer: fused Adam against the per-tensor loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import update_losses

import mt.training.loss as loss
from mt.common.special_ids import PAD_ID
from mt.training.loss import smoothed_cross_entropy


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_the_loss_and_its_gradient_are_torchs_label_smoothed_cross_entropy(smoothing):
    torch.manual_seed(0)
    logits = (torch.randn(60, 41) * 4).requires_grad_()
    target = torch.randint(0, 41, (60,))
    target[:7] = PAD_ID  # padded positions: no loss, no gradient
    ours = smoothed_cross_entropy(logits, target, smoothing)
    (ours_grad,) = torch.autograd.grad(ours * 0.37, logits)
    theirs = F.cross_entropy(
        logits, target, ignore_index=PAD_ID, label_smoothing=smoothing, reduction="sum"
    )
    (theirs_grad,) = torch.autograd.grad(theirs * 0.37, logits)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=0)
    torch.testing.assert_close(ours_grad, theirs_grad, rtol=1e-5, atol=1e-7)
    assert ours_grad[target == PAD_ID].abs().max() == 0


def test_a_step_with_the_cpu_loss_trains_as_with_torchs(
    memorise_root, cache_dir, tmp_path, monkeypatch
):
    ours = update_losses(memorise_root, cache_dir, tmp_path / "ours", 8)
    monkeypatch.setattr(loss, "smoothed_cross_entropy", loss.torch_cross_entropy)
    theirs = update_losses(memorise_root, cache_dir, tmp_path / "torch", 8)
    assert ours[-1] < ours[0]  # it trains
    # Adam divides by the gradients' size: rounding-level differences in the loss's gradient grow
    # to about 1e-5 of the loss within a few updates.
    assert np.allclose(ours, theirs, rtol=1e-4, atol=0)


def per_tensor_adam(trainer) -> None:
    assert all(group["fused"] for group in trainer.update.optimizer.param_groups)
    for group in trainer.update.optimizer.param_groups:
        group["fused"] = None  # torch's default on a CPU: a loop over the parameters


def test_fused_adam_trains_as_the_per_tensor_loop(memorise_root, cache_dir, tmp_path):
    plain = update_losses(memorise_root, cache_dir, tmp_path / "loop", 12, adjust=per_tensor_adam)
    fused = update_losses(memorise_root, cache_dir, tmp_path / "fused", 12)
    assert plain[-1] < plain[0]  # it trains
    assert np.allclose(fused, plain, rtol=1e-4, atol=0)
