"""Every architecture honours the incremental-decoder contract; attention weights are proper."""

from __future__ import annotations

import math

import pytest
import torch

from mt.common.special_ids import BOS_ID, PAD_ID
from mt.decoding.search import beam_search, greedy_search
from mt.models import build_model
from mt.models.attention import SCORES, Attention, AttentionScore
from mt.models.bahdanau import BahdanauConfig
from mt.models.contract import Uncached
from mt.models.rnn import RNNCell, RNNConfig, reverse_real_tokens
from mt.models.transformer import TransformerConfig

VOCAB = 60


CONFIGS = {
    "transformer-pre": TransformerConfig(d_model=32, num_heads=4, num_layers=2, ff_dim=64),
    "transformer-post": TransformerConfig(
        d_model=32, num_heads=4, num_layers=2, ff_dim=64, pre_norm=False
    ),
    "lstm": RNNConfig(emb_dim=16, hidden_dim=24, num_layers=2),
    "gru": RNNConfig(cell=RNNCell.gru, emb_dim=16, hidden_dim=24, num_layers=1),
    **{
        f"bahdanau-{s.value}": BahdanauConfig(emb_dim=16, hidden_dim=24, attention_dim=12, score=s)
        for s in AttentionScore
    },
}


def padded_batch():
    torch.manual_seed(1)
    src = torch.randint(4, VOCAB, (3, 7))
    src[0, 4:] = PAD_ID
    src[2, 6:] = PAD_ID
    tgt = torch.randint(4, VOCAB, (3, 6))
    tgt[:, 0] = BOS_ID
    return src, tgt


def seeded_model(name: str):
    torch.manual_seed(0)
    return build_model(CONFIGS[name], VOCAB, VOCAB, joint=True).eval()


@pytest.mark.parametrize("name", CONFIGS)
def test_incremental_decoding_equals_teacher_forced_forward(name):
    model = seeded_model(name)
    src, tgt = padded_batch()
    with torch.no_grad():
        full = torch.log_softmax(model(src, tgt), dim=-1)
        memory, state, steps = model.encode(src), None, []
        for t in range(tgt.size(1)):
            log_probs, state = model.decode_step(tgt[:, t], memory, state)
            steps.append(log_probs)
    torch.testing.assert_close(torch.stack(steps, dim=1), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", CONFIGS)
def test_source_padding_changes_nothing(name):
    model = seeded_model(name)
    src, tgt = padded_batch()
    with torch.no_grad():
        batched = model(src, tgt)[0]
        alone = model(src[:1, :4], tgt[:1])[0]
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("score", SCORES)
def test_attention_weights_are_a_distribution_over_real_tokens(score):
    torch.manual_seed(0)
    attention = Attention(score, 8, 8, 5)
    keys = torch.randn(2, 6, 8)
    mask = torch.tensor([[True] * 6, [True] * 3 + [False] * 3])
    context, weights = attention(torch.randn(2, 8), attention.project_keys(keys), keys, mask)
    assert (weights >= 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(2))
    assert (weights[1, 3:] == 0).all()
    torch.testing.assert_close(context, torch.einsum("bs,bsd->bd", weights, keys))


def test_bahdanau_exposes_its_alignment_at_each_step():
    model = seeded_model("bahdanau-additive")
    src, _ = padded_batch()
    with torch.no_grad():
        _, state = model.decode_step(torch.full((3,), BOS_ID), model.encode(src), None)
    alignment = state["attention"]
    assert alignment.shape == src.shape
    assert (alignment[src == PAD_ID] == 0).all()
    torch.testing.assert_close(alignment.sum(-1), torch.ones(3))


@pytest.mark.parametrize("name", CONFIGS)
def test_attention_maps_are_distributions_over_real_source_tokens(name):
    model = seeded_model(name)
    src, tgt = padded_batch()
    with torch.no_grad():
        maps = model.attention_maps(src, tgt)
    assert bool(maps) == (not name.startswith(("lstm", "gru")))  # no attention, no maps
    for weights in maps.values():
        assert weights.shape[0] == 3 and weights.shape[2:] == (tgt.size(1), src.size(1))
        assert (weights >= 0).all()
        assert (weights.masked_select((src == PAD_ID)[:, None, None, :]) == 0).all()
        torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))


def test_transformer_attention_maps_are_the_ones_its_forward_applies():
    model = seeded_model("transformer-pre")
    src, tgt = padded_batch()
    seen = {}
    for n, layer in enumerate(model.decoder_layers, 1):
        layer.cross_attn.register_forward_hook(
            lambda _m, args, out, n=n: seen.update({n: (args, out)})
        )
    with torch.no_grad():
        model(src, tgt)
        maps = model.attention_maps(src, tgt)
        assert list(maps) == ["layer1/cross_attention", "layer2/cross_attention"]
        for n, layer in enumerate(model.decoder_layers, 1):
            (_query, _k, v), out = seen[n]
            mixed = (maps[f"layer{n}/cross_attention"] @ v).transpose(1, 2).flatten(2)
            torch.testing.assert_close(layer.cross_attn.out_proj(mixed), out)


def test_rnn_source_reversal_keeps_padding_in_place():
    src = torch.tensor([[5, 6, 7, 3], [8, 3, PAD_ID, PAD_ID]])
    lengths = (src != PAD_ID).sum(dim=1)
    assert reverse_real_tokens(src, lengths).tolist() == [[3, 7, 6, 5], [3, 8, PAD_ID, PAD_ID]]


@pytest.mark.parametrize("name", CONFIGS)
def test_uncached_search_finds_the_same_hypotheses(name):
    model = seeded_model(name)
    src, _ = padded_batch()
    for search in (
        lambda m: greedy_search(m, src, 1.0, 4),
        lambda m: [h for hyps in beam_search(m, src, 3, 1.0, 3, 1.0, 4) for h in hyps],
    ):
        cached, uncached = search(model), search(Uncached(model))
        assert [h.tokens for h in cached] == [h.tokens for h in uncached]
        for a, b in zip(cached, uncached, strict=True):
            assert math.isclose(a.score, b.score, rel_tol=1e-5, abs_tol=1e-5)
