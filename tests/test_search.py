"""Greedy and beam search: a hand-checkable scripted decoder, then a real trained model."""

from __future__ import annotations

import math

import torch
from helpers import A, B, ScriptedDecoder, one_token_source
from torch import nn

from mt.common.special_ids import BOS_ID, EOS_ID
from mt.config.schema import DecodeConfig
from mt.decoding.inference import decode_ids
from mt.decoding.search import beam_search, greedy_search
from mt.models.transformer import Transformer, TransformerConfig


def scripted_beam(batch: int = 1, alpha: float = 0.0, nbest: int = 2):
    """Beam 2 over the scripted chain, length limit 4."""
    return beam_search(
        ScriptedDecoder(),
        one_token_source(batch),
        beam_size=2,
        alpha=alpha,
        nbest=nbest,
        max_len_a=0,
        max_len_b=4,
    )


def test_greedy_follows_the_locally_best_token_to_the_length_limit():
    (hyp,) = greedy_search(ScriptedDecoder(), one_token_source(), max_len_a=0, max_len_b=4)
    assert hyp.tokens == [A, A, A]  # the fourth token is the forced EOS
    assert math.isclose(hyp.log_prob, math.log(0.6 * 0.36 * 0.36 * 0.3), rel_tol=1e-5)


def test_beam_finds_the_hand_computed_nbest():
    (nbest,) = scripted_beam()
    assert [h.tokens for h in nbest] == [[B], [A, B]]
    assert math.isclose(nbest[0].log_prob, math.log(0.36), rel_tol=1e-5)
    assert math.isclose(nbest[1].log_prob, math.log(0.1836), rel_tol=1e-5)


def test_length_penalty_divides_by_gnmt_factor():
    (nbest,) = scripted_beam(alpha=1.0, nbest=1)
    # B EOS has two tokens: penalty (5 + 2) / 6.
    assert math.isclose(nbest[0].score, math.log(0.36) / (7 / 6), rel_tol=1e-5)


def test_beam_search_rows_are_independent_of_batch_size():
    batched = scripted_beam(batch=3)
    assert all([h.tokens for h in hyps] == [[B], [A, B]] for hyps in batched)


def pad_batch(src: list[torch.Tensor]) -> torch.Tensor:
    return nn.utils.rnn.pad_sequence(src, batch_first=True)


def test_beam_size_one_equals_greedy(trained_model):
    model, _, src = trained_model
    batch = pad_batch(src)
    greedy = greedy_search(model, batch, 1.5, 5)
    beam = beam_search(model, batch, beam_size=1, alpha=1.0, nbest=1, max_len_a=1.5, max_len_b=5)
    assert [h.tokens for h in greedy] == [hyps[0].tokens for hyps in beam]
    for g, hyps in zip(greedy, beam, strict=True):
        assert math.isclose(g.log_prob, hyps[0].log_prob, rel_tol=1e-4, abs_tol=1e-4)


def test_beam_never_scores_below_greedy(trained_model):
    """On inputs the model knows. (Beam search has no such guarantee in general: on unseen
    input this memorised model loves repetition loops, which can push the greedy path out of
    the beam; the scripted chain above shows beam beating greedy.)"""
    model, _, src = trained_model
    batch = pad_batch(src[:20])
    greedy = greedy_search(model, batch, 1.5, 5)
    beam = beam_search(model, batch, beam_size=5, alpha=0.0, nbest=1, max_len_a=1.5, max_len_b=5)
    for g, hyps in zip(greedy, beam, strict=True):
        assert hyps[0].log_prob >= g.log_prob - 1e-4


def test_beam_beats_greedy_on_the_scripted_chain():
    (greedy,) = greedy_search(ScriptedDecoder(), one_token_source(), max_len_a=0, max_len_b=4)
    ((best,),) = scripted_beam(nbest=1)
    assert best.log_prob > greedy.log_prob


def test_nbest_is_distinct_and_in_score_order(trained_model):
    model, _, src = trained_model
    beam = beam_search(
        model, pad_batch(src), beam_size=5, alpha=1.0, nbest=4, max_len_a=1.5, max_len_b=5
    )
    for hyps in beam:
        assert len(hyps) == 4
        assert len({tuple(h.tokens) for h in hyps}) == 4
        scores = [h.score for h in hyps]
        assert scores == sorted(scores, reverse=True)


def test_sentence_translates_the_same_alone_and_in_a_batch(trained_model):
    """In a batch, finished sentences leave it mid-search (their rows are dropped); alone, a
    sentence is never dropped. Same output: the removal changes nothing."""
    model, _, src = trained_model
    decode = DecodeConfig(beam_size=4, max_tokens=2000)
    together = decode_ids(model, src, decode, torch.device("cpu"))
    for i in (0, 7, 25, 39):
        (alone,) = decode_ids(model, [src[i]], decode, torch.device("cpu"))
        assert alone[0].tokens == together[i][0].tokens
        assert math.isclose(alone[0].score, together[i][0].score, rel_tol=1e-4, abs_tol=1e-4)


def test_decoder_cache_grows_one_position_per_step(trained_model):
    model, _, src = trained_model
    memory = model.encode(pad_batch(src[:2]))
    _, state = model.decode_step(torch.full((2,), BOS_ID), memory, None)
    _, state = model.decode_step(torch.full((2,), A), memory, state)
    assert all(k.size(2) == 2 for k, _ in state)


def test_a_source_longer_than_the_positions_is_cut_and_the_output_stays_within_them(caplog):
    """An untrained Transformer with 12 positions never says EOS: every limit is reached."""
    cfg = TransformerConfig(
        d_model=16, num_heads=2, num_layers=1, ff_dim=32, dropout=0.0, max_positions=12
    )
    torch.manual_seed(0)
    model = Transformer(cfg, 50, 50, joint=True).eval()
    src = [torch.cat([torch.randint(4, 50, (n,)), torch.tensor([EOS_ID])]) for n in (5, 30)]
    for beam_size in (1, 3):
        decode = DecodeConfig(beam_size=beam_size, max_len_a=2.0, max_len_b=10)
        hyps = decode_ids(model, src, decode, torch.device("cpu"))
        assert max(len(h[0].tokens) for h in hyps) <= 11  # + EOS = 12 positions
    assert "1 sources longer than the model's 12 positions: cut to fit" in caplog.text
