"""Ensembles: several models decoded as one through the contract, any mix of architectures."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import assert_clean_failure, make_config, multi30k_lines, run_in_process, write_lines
from torch.nn.utils.rnn import pad_sequence

from mt import translate as translate_command
from mt.common.special_ids import BOS_ID, EOS_ID
from mt.config.schema import DecodeConfig
from mt.decoding.ensemble import Ensemble
from mt.decoding.inference import decode_ids
from mt.decoding.translator import Translator, load_trained
from mt.training.trainer import train

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def pair(moved_checkpoint, bahdanau_checkpoint):
    """A Transformer and a Bahdanau model of one vocabulary, and 10 sources."""
    transformer, tokenizer, _ = load_trained(moved_checkpoint)
    bahdanau, _, _ = load_trained(bahdanau_checkpoint)
    src = [torch.tensor(ids) for ids in tokenizer.encode_src(multi30k_lines("train", "de", 10))]
    return transformer, bahdanau, src


def test_an_ensemble_of_one_model_is_that_model(pair):
    transformer, _, src = pair
    decode = DecodeConfig(beam_size=3, nbest=2)
    alone = decode_ids(transformer, src, decode, CPU)
    ensemble = decode_ids(Ensemble([transformer]), src, decode, CPU)
    assert [[h.tokens for h in n] for n in ensemble] == [[h.tokens for h in n] for n in alone]
    for ours, theirs in zip(ensemble, alone, strict=True):
        assert [h.score for h in ours] == pytest.approx([h.score for h in theirs], abs=1e-5)


def test_each_step_is_the_log_of_the_members_mean_probability(pair):
    transformer, bahdanau, src = pair
    ensemble = Ensemble([transformer, bahdanau]).eval()
    batch = pad_sequence(src, batch_first=True)
    with torch.no_grad():
        memory, state = ensemble.encode(batch), None
        own = [(m, m.encode(batch), None) for m in (transformer, bahdanau)]
        tokens = torch.full((len(src),), BOS_ID)
        for _ in range(4):  # each model keeps its own cache along the same prefix
            log_probs, state = ensemble.decode_step(tokens, memory, state)
            steps = [m.decode_step(tokens, mem, s) for m, mem, s in own]
            own = [(m, mem, s) for (m, mem, _), (_, s) in zip(own, steps, strict=True)]
            mean = (steps[0][0].exp() + steps[1][0].exp()) / 2
            torch.testing.assert_close(log_probs, mean.log(), atol=1e-5, rtol=1e-5)
            tokens = log_probs.argmax(dim=-1)
        assert not torch.allclose(steps[0][0], steps[1][0])  # two different opinions


def test_a_mixed_ensemble_beam_scores_its_output_by_the_mean_probability(pair):
    transformer, bahdanau, src = pair
    ensemble = Ensemble([transformer, bahdanau]).eval()
    (hyp,), *_ = decode_ids(ensemble, src[:1], DecodeConfig(beam_size=4), CPU)
    tokens = torch.tensor([[BOS_ID, *hyp.tokens]])
    with torch.no_grad():
        log_probs = ensemble(src[0][None], tokens)[0]  # (T, V), teacher-forced
    target = [*hyp.tokens, EOS_ID]
    expected = sum(log_probs[t, token].item() for t, token in enumerate(target))
    assert hyp.log_prob == pytest.approx(expected, abs=1e-4)
    assert math.isfinite(hyp.log_prob)


def test_translate_decodes_a_list_of_checkpoints_as_one(moved_checkpoint, bahdanau_checkpoint):
    sentences = multi30k_lines("train", "de", 5)
    both = Translator.from_checkpoints([moved_checkpoint, bahdanau_checkpoint], "cpu")
    assert isinstance(both.engine.model, Ensemble)
    assert len(both.translate(sentences)) == 5


def test_an_ensemble_of_two_vocabularies_is_refused_and_writes_nothing(
    memorise_root, cache_dir, moved_checkpoint, tmp_path, capsys, monkeypatch
):
    overrides = ["trainer.max_steps=1", "data.vocab_size=200", "decode.max_len_b=2"]
    train(make_config(memorise_root, "tiny", cache_dir, *overrides), tmp_path / "other")
    other = tmp_path / "other" / "checkpoints" / "last.pt"
    source = write_lines(tmp_path / "in.de", multi30k_lines("train", "de", 3))
    monkeypatch.chdir(tmp_path)
    args = [f"checkpoint=[{moved_checkpoint},{other}]", f"input={source}", "output=out.en"]
    result = run_in_process(translate_command.main, *args, capsys=capsys, monkeypatch=monkeypatch)
    assert_clean_failure(result, f"error: {other}: another vocabulary than {moved_checkpoint}'s")
    assert not (tmp_path / "out.en").exists()
