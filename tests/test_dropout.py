"""The CPU dropout: F.dropout's contract (rate, scale, gradient, eval), and the attention's
dropout in training only (its written-out path against torch: test_transformer.py)."""

from __future__ import annotations

import pytest
import torch
from helpers import update_losses

import mt.models.dropout as lane_dropout
import mt.models.transformer as transformer
from mt.models.dropout import Dropout, dropout, keep_mask
from mt.models.transformer import MultiHeadAttention


@pytest.mark.parametrize("p", [0.1, 0.2, 0.5, 0.9])
def test_drop_rate_is_p_and_neighbours_are_independent(p):
    torch.manual_seed(0)
    n = 400_000
    keep = keep_mask(torch.Size([n]), p, torch.device("cpu"), torch.float)
    # 5 standard deviations of a binomial proportion over n elements.
    bound = 5 * (p * (1 - p) / n) ** 0.5
    assert abs((1 - keep.mean().item()) - p) < bound
    # The 4 lanes of one draw, and neighbouring draws: no correlation beyond noise.
    for shift in (1, 2, 3, 4, 5):
        both = (keep[:-shift] * keep[shift:]).mean().item()
        assert abs(both - (1 - p) ** 2) < 5 * bound


def test_kept_elements_scale_and_the_gradient_follows_the_mask():
    torch.manual_seed(1)
    x = torch.randn(64, 33, requires_grad=True)
    out = dropout(x, 0.25, training=True)
    kept = out != 0
    assert 0.15 < 1 - kept.float().mean().item() < 0.35
    torch.testing.assert_close(out[kept], x[kept] / 0.75)
    out.sum().backward()
    torch.testing.assert_close(x.grad, kept.float() / 0.75)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_output_and_gradient_are_atens_dropout_on_the_same_mask_to_the_bit(dtype):
    x = torch.randn(37, 29, dtype=dtype, requires_grad=True)
    grad = torch.randn(37, 29, dtype=dtype)
    torch.manual_seed(5)
    out = dropout(x, 0.1, training=True)
    out.backward(grad)
    torch.manual_seed(5)
    keep = keep_mask(x.shape, 0.1, x.device, torch.bool)  # the same draws
    aten = torch.ops.aten.native_dropout_backward
    assert torch.equal(out, aten(x.detach(), keep, 1 / 0.9))
    assert torch.equal(x.grad, aten(grad, keep, 1 / 0.9))


def bool_mask_dropout(x, p, training):
    """The same draws as a bool mask, applied each way by aten's dropout kernel: the CPU
    dropout as it was before 0c5fa44 (with `scaled` patched to the kernel)."""
    if not training or p == 0.0:
        return x
    keep = keep_mask(x.shape, p, x.device, torch.bool)
    return lane_dropout._ScaleKept.apply(x, keep, 1.0 / (1.0 - p))


def aten_kernel(x, keep, scale):
    return torch.ops.aten.native_dropout_backward(x, keep, scale)


def test_a_step_with_dropout_gives_the_bool_masks_losses_to_the_bit(
    memorise_root, cache_dir, tmp_path, monkeypatch
):
    ours = update_losses(memorise_root, cache_dir, tmp_path / "ours", 6, "model.dropout=0.3")
    monkeypatch.setattr(lane_dropout, "dropout", bool_mask_dropout)
    monkeypatch.setattr(transformer, "dropout", bool_mask_dropout)
    monkeypatch.setattr(lane_dropout, "scaled", aten_kernel)
    theirs = update_losses(memorise_root, cache_dir, tmp_path / "aten", 6, "model.dropout=0.3")
    assert ours[-1] < ours[0]  # it trains
    assert ours == theirs


def test_eval_mode_and_zero_rate_change_nothing_and_one_drops_everything():
    x = torch.randn(8, 5)
    module = Dropout(0.3).eval()
    assert torch.equal(module(x), x)
    assert torch.equal(dropout(x, 0.0, training=True), x)
    assert torch.equal(dropout(x, 1.0, training=True), torch.zeros_like(x))


def test_same_seed_same_mask_and_another_seed_another():
    def masks(seed):
        torch.manual_seed(seed)
        return dropout(torch.ones(1000), 0.2, training=True)

    assert torch.equal(masks(3), masks(3))
    assert not torch.equal(masks(3), masks(4))


def test_bf16_input_keeps_its_dtype():
    x = torch.randn(16, 8, dtype=torch.bfloat16)
    assert dropout(x, 0.2, training=True).dtype == torch.bfloat16


def test_attention_dropout_drops_weights_in_training_only():
    torch.manual_seed(0)
    attention = MultiHeadAttention(16, 2, dropout=0.5)
    query = torch.randn(2, 6, 16)
    kv = attention.project_kv(query)
    attention.eval()
    evaluated = attention(query, *kv, is_causal=True)
    attention.train()
    trained = [attention(query, *kv, is_causal=True) for _ in range(2)]
    assert not torch.allclose(trained[0], evaluated)
    assert not torch.allclose(trained[0], trained[1])
