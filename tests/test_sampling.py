"""Sampling (decode.sampling): checked on the scripted Markov chain (helpers.py), whose
distribution is known, then through decode_ids on a real trained model."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
import torch
from helpers import A, B, ScriptedDecoder, one_token_source

from mt.common.errors import MTError
from mt.common.special_ids import BOS_ID, EOS_ID
from mt.config.checks import check_decode
from mt.config.schema import DecodeConfig
from mt.decoding.inference import decode_ids
from mt.decoding.search import greedy_search, restricted, sample_search, sampler

ROWS = 4000


def draw(top_k=None, top_p=1.0, temperature=1.0, seed=1, rows=ROWS, limit=6):
    """rows samples of the chain (limit tokens at most, EOS included), as token lists."""
    pick = sampler(top_k, top_p, temperature, torch.Generator().manual_seed(seed))
    (samples,) = sample_search(
        ScriptedDecoder(), one_token_source(), rows, 0.0, max_len_a=0, max_len_b=limit, pick=pick
    )
    return [h.tokens for h in samples]


def transitions(samples: list[list[int]], limit: int = 6) -> set[tuple[int, int]]:
    """Every (token, next token) a sample made by choice, not forced at the length limit."""
    made = set()
    for tokens in samples:
        path = [BOS_ID, *tokens, EOS_ID]
        steps = enumerate(zip(path, path[1:], strict=False))
        made |= {(a, b) for k, (a, b) in steps if k + 1 < limit}
    return made


def test_restricted_keeps_the_top_k_and_the_nucleus():
    logits = torch.tensor([[0.6, 0.3, 0.1]]).log()
    assert torch.isfinite(restricted(logits, 2, 1.0)).tolist() == [[True, True, False]]
    # .6 alone reaches .5; .6 + .3 reach .85; every token is needed for 1.0
    assert torch.isfinite(restricted(logits, None, 0.5)).tolist() == [[True, False, False]]
    assert torch.isfinite(restricted(logits, None, 0.85)).tolist() == [[True, True, False]]
    assert torch.isfinite(restricted(logits, None, 1.0)).all()


def test_a_nucleus_too_small_for_float32_keeps_the_most_likely_token():
    logits = torch.tensor([[0.3, 0.6, 0.1], [0.5, 0.2, 0.3]]).log()
    assert torch.isfinite(restricted(logits, None, 1e-300)).tolist() == [
        [False, True, False],
        [True, False, False],
    ]


def test_samples_follow_the_models_distribution():
    first = [tokens[0] for tokens in draw()]
    assert first.count(A) / ROWS == pytest.approx(0.6, abs=0.03)
    assert first.count(B) / ROWS == pytest.approx(0.4, abs=0.03)


def test_every_sampled_token_lies_in_the_top_k():
    made = transitions(draw(top_k=2))
    assert (A, EOS_ID) not in made  # after A, EOS (.3) is third behind A (.36) and B (.34)
    assert {(BOS_ID, A), (BOS_ID, B), (A, A), (A, B), (B, EOS_ID)} <= made


def test_every_sampled_token_lies_in_the_nucleus():
    made = transitions(draw(top_p=0.5))
    # After BOS, A (.6) alone reaches .5; after A, A and B (.7); after B, EOS (.9).
    assert made <= {(BOS_ID, A), (A, A), (A, B), (B, EOS_ID)}
    assert {(BOS_ID, A), (A, A), (A, B), (B, EOS_ID)} == made


def test_top_k_one_and_a_cold_temperature_are_greedy():
    (greedy,) = greedy_search(ScriptedDecoder(), one_token_source(), max_len_a=0, max_len_b=6)
    assert set(map(tuple, draw(top_k=1, rows=50))) == {tuple(greedy.tokens)}
    assert set(map(tuple, draw(temperature=0.001, rows=50))) == {tuple(greedy.tokens)}


def test_a_sample_is_scored_by_the_models_own_log_probability():
    pick = sampler(None, 1.0, 1.0, torch.Generator().manual_seed(3))
    (samples,) = sample_search(
        ScriptedDecoder(), one_token_source(), 20, 1.0, max_len_a=0, max_len_b=6, pick=pick
    )
    chain = ScriptedDecoder().log_probs
    for h in samples:
        path = [BOS_ID, *h.tokens, EOS_ID]
        expected = sum(chain[a, b].item() for a, b in zip(path, path[1:], strict=False))
        if len(path) - 1 < 6:  # not cut by the limit, where EOS is forced
            assert h.log_prob == pytest.approx(expected, abs=1e-5)
        assert h.score == pytest.approx(h.log_prob / ((5 + len(path) - 1) / 6), abs=1e-5)
    assert [h.score for h in samples] == sorted((h.score for h in samples), reverse=True)


def sampled(trained_model, **options) -> list[list[list[int]]]:
    model, _, src = trained_model
    decode = DecodeConfig(sampling=True, nbest=3, **options)
    return [
        [h.tokens for h in hyps] for hyps in decode_ids(model, src, decode, torch.device("cpu"))
    ]


def test_same_seed_same_samples_other_seed_other_samples(trained_model):
    once, again = sampled(trained_model, seed=7), sampled(trained_model, seed=7)
    assert once == again
    assert sampled(trained_model, seed=8) != once
    assert all(len(samples) == 3 for samples in once)


def test_top_k_one_through_decode_ids_equals_greedy(trained_model):
    model, _, src = trained_model
    greedy = decode_ids(model, src, DecodeConfig(beam_size=1), torch.device("cpu"))
    for samples, (best,) in zip(sampled(trained_model, top_k=1), greedy, strict=True):
        assert samples == [best.tokens] * 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"top_k": 0}, "decode.top_k=0: must be in [1, 1000000]"),
        ({"nbest": 10**8}, "decode.nbest=100000000: must be in [1, 1000]"),
        ({"top_p": 0.0}, "decode.top_p=0.0: must be in (0, 1]"),
        ({"top_p": 1.5}, "decode.top_p=1.5: must be in (0, 1]"),
        ({"temperature": 0.0}, "decode.temperature=0.0: must be in [0.01, 100]"),
        ({"temperature": float("inf")}, "decode.temperature=inf: must be in [0.01, 100]"),
        ({"seed": 10**22}, f"decode.seed={10**22}: must be in [0, {2**63 - 1}]"),
        ({"seed": -1}, f"decode.seed=-1: must be in [0, {2**63 - 1}]"),
    ],
)
def test_each_bad_sampling_setting_is_named(change, message):
    with pytest.raises(MTError, match=re.escape(message)):
        check_decode(replace(DecodeConfig(sampling=True), **change))


def test_samples_may_outnumber_the_beam_but_beam_hypotheses_may_not():
    check_decode(DecodeConfig(sampling=True, beam_size=1, nbest=5))
    with pytest.raises(MTError, match="decode.nbest=5 exceeds decode.beam_size=1"):
        check_decode(DecodeConfig(beam_size=1, nbest=5))
