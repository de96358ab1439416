"""A recorded beam search (mt/decoding/beam_history.py): recording changes nothing the search
does, the best path of the recorded tree is the search's output for every architecture and
for an ensemble, and every node's scores add up along its path."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from helpers import multi30k_lines, run_in_process, write_lines

from mt import evaluate
from mt.common.errors import MTError
from mt.decoding.beam_history import BeamHistory
from mt.decoding.ensemble import Ensemble
from mt.decoding.search import beam_search, length_penalty
from mt.decoding.translator import Translator
from mt.models import build_model
from mt.models.bahdanau import BahdanauConfig
from mt.models.rnn import RNNConfig
from mt.models.transformer import TransformerConfig

VOCAB = 40
SMALL = {
    "transformer": TransformerConfig(d_model=32, num_heads=4, num_layers=2, ff_dim=64),
    "rnn": RNNConfig(emb_dim=16, hidden_dim=24, num_layers=1),
    "bahdanau": BahdanauConfig(emb_dim=16, hidden_dim=24, attention_dim=12),
}


def model_of(name: str, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(SMALL[name], VOCAB, VOCAB, True).eval()


@pytest.mark.parametrize("name", [*SMALL, "ensemble"])
def test_the_best_path_of_the_recorded_tree_is_the_searchs_output(name):
    model = Ensemble([model_of("transformer"), model_of("rnn", 1)]) if name == "ensemble" else None
    model = model or model_of(name)
    torch.manual_seed(3)
    src = torch.randint(4, VOCAB, (3, 7))
    src[1, 5:] = 0  # one shorter sentence, padded
    settings = dict(beam_size=4, alpha=0.6, nbest=3, max_len_a=1.5, max_len_b=3)
    plain = beam_search(model, src, **settings)
    history = BeamHistory(3, settings["alpha"])
    recorded = beam_search(model, src, **settings, history=history)
    assert recorded == plain  # recording changes nothing
    for sentence, hyps in enumerate(plain):
        assert history.best_path(sentence) == hyps[0].tokens
        steps = history.steps[sentence]
        finished = sorted((n.score for s in steps for n in s.finished), reverse=True)
        assert finished[: len(hyps)] == pytest.approx([h.score for h in hyps])
        for t, step in enumerate(steps, start=1):
            assert len(step.kept) == settings["beam_size"]
            for node in step.finished:
                assert node.score == pytest.approx(node.log_prob / length_penalty(t, 0.6))
            if t > 1:  # a node's log-probability is its parent's and its own token's
                parents = steps[t - 2].kept
                for node in step.kept + step.finished + step.pruned:
                    total = parents[node.parent].log_prob + node.token_log_prob
                    assert node.log_prob == pytest.approx(total, abs=1e-4)
            best_pruned = max((n.log_prob for n in step.pruned), default=float("-inf"))
            assert best_pruned <= min(n.log_prob for n in step.kept)  # pruned below the beam


def test_a_translators_recorded_search_is_what_it_translates(moved_checkpoint):
    translator = Translator.from_checkpoint(moved_checkpoint, "cpu")
    sentence = multi30k_lines("train", "de", 1)[0]
    history, hyps = translator.recorded_search(sentence)
    best = translator.tokenizer.decode_tgt([history.best_path(0)])[0]
    assert best == translator.translate([sentence])[0]
    assert hyps[0].tokens == history.best_path(0)
    shape = history.vistools(0)
    steps = len(history.steps[0])
    assert [len(shape[key]) for key in shape] == [steps] * 3
    assert json.loads(json.dumps(history.as_json(0)))[0]["kept"][0]["fate"] == "kept"
    with pytest.raises(MTError, match="needs our beam search"):
        translator.recorded_search(sentence, replace(translator.config.decode, beam_size=1))


def test_evaluate_tells_search_errors_from_model_errors(
    moved_checkpoint, tmp_path, capsys, monkeypatch
):
    translator = Translator.from_checkpoint(moved_checkpoint, "cpu")
    sources = multi30k_lines("train", "de", 20)
    five = replace(translator.config.decode, beam_size=5, nbest=5)
    nbests = translator.translate_nbest(sources, five)
    src = write_lines(tmp_path / "src.de", sources)
    cases = {
        "first": [n[0][0] for n in nbests],  # the beam's own output: the reference itself
        "second": [n[1][0] for n in nbests],  # ranked below the output: the model's choice
    }
    found = {}
    for name, refs in cases.items():
        ref = write_lines(tmp_path / f"{name}.en", refs)
        hyps = tmp_path / f"{name}.hyp"
        args = [f"checkpoint={moved_checkpoint}", f"src={src}", f"ref={ref}", f"hyps={hyps}"]
        result = run_in_process(
            evaluate.main, *args, "search_errors=[1,5]", capsys=capsys, monkeypatch=monkeypatch
        )
        assert result.returncode == 0, result.stderr
        metrics = json.loads(hyps.with_name(hyps.name + ".metrics.json").read_text())
        found[name] = {row["beam"]: row for row in metrics["search_errors"]}
        assert "search errors" in result.stdout
    assert found["first"][5]["exact"] == 1.0 and found["first"][5]["bleu"] > 99.99
    assert found["second"][5]["search_errors"] == 0 and found["second"][5]["model_errors"] == 1
    for rows in found.values():
        for row in rows.values():
            total = row["exact"] + row["search_errors"] + row["model_errors"]
            assert total == pytest.approx(1.0)
