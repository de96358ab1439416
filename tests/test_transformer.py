"""The Transformer against torch's reference attention, and its masking and caching invariants."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mt.common.special_ids import PAD_ID
from mt.models.transformer import MultiHeadAttention, Transformer, TransformerConfig, attend

VOCAB = 60


def small_transformer(pre_norm: bool = True) -> Transformer:
    torch.manual_seed(0)
    cfg = TransformerConfig(
        d_model=32, num_heads=4, num_layers=2, ff_dim=64, dropout=0.0, pre_norm=pre_norm
    )
    return Transformer(cfg, VOCAB, VOCAB, joint=True).eval()


def random_tokens(batch: int, length: int) -> torch.Tensor:
    return torch.randint(4, VOCAB, (batch, length))


@pytest.mark.parametrize(
    "dropout, training",
    # SDPA's path; and the CPU's written-out training path, with a rate that rounds to 0 of
    # 65536 and so keeps every weight (mt/models/dropout.py).
    [(0.0, False), (1e-9, True)],
    ids=["sdpa", "written-out"],
)
def test_attention_equals_torch_multihead_attention(dropout, training):
    torch.manual_seed(0)
    d_model, heads = 32, 4
    ours = MultiHeadAttention(d_model, heads, dropout=dropout).train(training)
    reference = nn.MultiheadAttention(d_model, heads, batch_first=True)
    with torch.no_grad():
        q_w, k_w, v_w = reference.in_proj_weight.chunk(3)
        q_b, k_b, v_b = reference.in_proj_bias.chunk(3)
        for proj, w, b in (
            (ours.q_proj, q_w, q_b),
            (ours.k_proj, k_w, k_b),
            (ours.v_proj, v_w, v_b),
        ):
            proj.weight.copy_(w)
            proj.bias.copy_(b)
        ours.out_proj.weight.copy_(reference.out_proj.weight)
        ours.out_proj.bias.copy_(reference.out_proj.bias)
    query, memory = torch.randn(3, 5, d_model), torch.randn(3, 7, d_model)
    padding = torch.zeros(3, 7, dtype=torch.bool)
    padding[1, 4:] = True
    padding[2, 6:] = True

    # Key padding: torch masks True = ignore; ours True = attend.
    expected, _ = reference(query, memory, memory, key_padding_mask=padding)
    got = ours(query, *ours.project_kv(memory), mask=~padding[:, None, None, :])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)

    # Causal self-attention.
    causal = torch.triu(torch.ones(5, 5, dtype=torch.bool), diagonal=1)
    expected, _ = reference(query, query, query, attn_mask=causal)
    got = ours(query, *ours.project_kv(query), is_causal=True)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_written_out_attention_has_sdpas_output_and_gradients(causal):
    # The CPU's training path (a dropout rate that rounds to 0 keeps every weight) against
    # F.scaled_dot_product_attention, which the rate 0 takes: values and all three gradients.
    torch.manual_seed(0)
    q, k, v = (torch.randn(3, 4, 6, 8, requires_grad=True) for _ in range(3))
    mask = None if causal else torch.ones(3, 1, 1, 6, dtype=torch.bool)
    if mask is not None:
        mask[1, ..., 4:] = False
    grad = torch.randn(3, 4, 6, 8)
    results = []
    for rate in (0.0, 1e-9):
        out = attend(q, k, v, mask, causal, rate)
        results.append((out, *torch.autograd.grad(out, (q, k, v), grad)))
    for ours, sdpa in zip(*results, strict=True):
        torch.testing.assert_close(ours, sdpa, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pre_norm", [True, False])
def test_future_target_tokens_do_not_change_earlier_outputs(pre_norm):
    model = small_transformer(pre_norm)
    src, tgt = random_tokens(2, 6), random_tokens(2, 8)
    changed = tgt.clone()
    changed[:, 5:] = random_tokens(2, 3)
    with torch.no_grad():
        before, after = model(src, tgt), model(src, changed)
    torch.testing.assert_close(before[:, :5], after[:, :5])
    assert not torch.allclose(before[:, 5:], after[:, 5:])


@pytest.mark.parametrize("pre_norm", [True, False])
def test_padding_changes_nothing_for_real_tokens(pre_norm):
    model = small_transformer(pre_norm)
    short_src, short_tgt = random_tokens(1, 4), random_tokens(1, 3)
    long_src, long_tgt = random_tokens(1, 9), random_tokens(1, 7)
    pad = torch.full((1, 5), PAD_ID)
    src = torch.cat([torch.cat([short_src, pad], 1), long_src])
    tgt = torch.cat([torch.cat([short_tgt, pad[:, :4]], 1), long_tgt])
    with torch.no_grad():
        batched = model(src, tgt)
        alone = model(short_src, short_tgt)
    torch.testing.assert_close(batched[0, :3], alone[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batched[1], model(long_src, long_tgt)[0], atol=1e-5, rtol=1e-5)


def test_tied_embeddings_share_one_matrix():
    model = small_transformer()
    assert model.src_embed.weight is model.tgt_embed.weight
    assert model.output is None
    untied = Transformer(TransformerConfig(d_model=32, num_heads=4), 50, 70, joint=False)
    assert untied.output.weight.shape == (70, 32)
    assert untied.src_embed.weight.shape == (50, 32)
