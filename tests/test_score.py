"""mt.score: the model's log-probability of given translations, checked against the decoder
contract step by step and against the beam's own scores."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import assert_clean_failure, multi30k_lines, run_tool, write_lines

from mt.common.special_ids import BOS_ID, EOS_ID
from mt.config.schema import DecodeConfig
from mt.decoding.inference import decode_ids
from mt.decoding.likelihood import score_pairs

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def references(trained_model):
    """The 20 memorised and 20 unseen sentences' English references, as target ids."""
    _, tokenizer, _ = trained_model
    lines = multi30k_lines("train", "en", 20) + multi30k_lines("val", "en", 20)
    return [torch.tensor(ids) for ids in tokenizer.encode_tgt(lines)]


def stepwise(model, src: torch.Tensor, tgt: torch.Tensor) -> float:
    """The reference's log-probability, one decode_step at a time."""
    memory, state, total = model.encode(src[None]), None, 0.0
    for prev, token in zip([BOS_ID, *tgt.tolist()], [*tgt.tolist(), EOS_ID], strict=True):
        log_probs, state = model.decode_step(torch.tensor([prev]), memory, state)
        total += log_probs[0, token].item()
    return total


def test_a_score_is_the_sum_of_the_decoders_step_log_probabilities(trained_model, references):
    model, _, src = trained_model
    found = score_pairs(model, src, references, 4096, CPU)
    with torch.no_grad():
        for k in (0, 5, 25, 39):  # memorised and unseen
            assert found[k].log_prob == pytest.approx(
                stepwise(model, src[k], references[k]), abs=1e-3
            )
            assert found[k].tokens == len(references[k]) + 1
    memorised = sum(s.per_token for s in found[:20]) / 20
    unseen = sum(s.per_token for s in found[20:]) / 20
    assert memorised > unseen  # it knows its 30 pairs by heart


def test_the_beams_own_output_scores_what_the_beam_said(trained_model):
    model, _, src = trained_model
    best = [hyps[0] for hyps in decode_ids(model, src, DecodeConfig(beam_size=4), CPU)]
    outputs = [torch.tensor(h.tokens, dtype=torch.long) for h in best]
    found = score_pairs(model, src, outputs, 4096, CPU)
    assert [s.log_prob for s in found] == pytest.approx([h.log_prob for h in best], abs=1e-3)


def test_scores_do_not_depend_on_the_batch(trained_model, references):
    model, _, src = trained_model
    together = score_pairs(model, src, references, 4096, CPU)
    alone = score_pairs(model, src, references, 1, CPU)  # one pair per batch
    assert [s.log_prob for s in alone] == pytest.approx([s.log_prob for s in together], abs=1e-4)


def test_the_score_command_writes_a_line_per_pair_and_the_perplexity(moved_checkpoint, tmp_path):
    src = write_lines(tmp_path / "in.de", multi30k_lines("train", "de", 6))
    ref = write_lines(tmp_path / "ref.en", multi30k_lines("train", "en", 6))
    out = tmp_path / "scores.tsv"
    args = [f"checkpoint={moved_checkpoint}", f"src={src}", f"ref={ref}", f"output={out}"]
    result = run_tool("score", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in out.read_text().splitlines()]
    assert len(rows) == 6
    for log_prob, per_token, tokens in rows:
        assert float(per_token) == pytest.approx(float(log_prob) / int(tokens), abs=1e-3)
    total = sum(float(r[0]) for r in rows)
    ppl = math.exp(-total / sum(int(r[2]) for r in rows))
    assert "6 lines |" in result.stdout and f"ppl {ppl:.2f}" in result.stdout


def test_scoring_files_of_two_lengths_is_refused_and_writes_nothing(moved_checkpoint, tmp_path):
    src = write_lines(tmp_path / "in.de", multi30k_lines("train", "de", 3))
    ref = write_lines(tmp_path / "ref.en", multi30k_lines("train", "en", 2))
    args = [f"checkpoint={moved_checkpoint}", f"src={src}", f"ref={ref}", "output=scores.tsv"]
    result = run_tool("score", *args, cwd=tmp_path)
    assert_clean_failure(result, "in.de has 3 lines but", "ref.en has 2")
    assert not (tmp_path / "scores.tsv").exists()
