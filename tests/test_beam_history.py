"""A recorded beam search (mt/decoding/beam_history.py): recording changes nothing the search
does, the best path of the recorded tree is the search's output for every architecture and
for an ensemble, and every node's scores add up along its path."""

from __future__ import annotations

import io
import json
import runpy
import sys
from dataclasses import replace

import pytest
import torch
from helpers import (
    REPO,
    A,
    B,
    ScriptedDecoder,
    multi30k_lines,
    one_token_source,
    run_in_process,
    write_lines,
)

from mt import evaluate, translate
from mt.common.errors import MTError
from mt.config.schema import DecodeConfig, DecodeOverrides
from mt.config.tools import TranslateConfig
from mt.decoding.beam_history import BeamHistory
from mt.decoding.ensemble import Ensemble
from mt.decoding.inference import decode_ids
from mt.decoding.likelihood import score_pairs
from mt.decoding.search import beam_search, length_penalty
from mt.decoding.streaming import translate_stream
from mt.decoding.translator import Translator
from mt.evaluation.search_errors import judge
from mt.models import build_model
from mt.models.bahdanau import BahdanauConfig
from mt.models.rnn import RNNConfig
from mt.models.transformer import TransformerConfig

VOCAB = 40
CPU = torch.device("cpu")
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


def recorded(model, src, alpha: float, top_k: int = 0, beam_size: int = 4):
    history = BeamHistory(src.size(0), alpha, top_k)
    settings = dict(beam_size=beam_size, alpha=alpha, nbest=1, max_len_a=1.5, max_len_b=3)
    return history, beam_search(model, src, **settings, history=history)


def finished_set(history: BeamHistory, sentence: int) -> set[tuple[int, ...]]:
    steps = history.steps[sentence]
    return {
        tuple(history.path(sentence, t, node))
        for t, step in enumerate(steps)
        for node in step.finished
    }


def test_re_ranking_at_another_length_penalty_is_a_fresh_search_when_the_same_ones_finish():
    torch.manual_seed(5)
    src = torch.randint(4, VOCAB, (12, 6))
    compared = changed = 0
    for name in SMALL:
        model = model_of(name, 2)
        history, _ = recorded(model, src, 0.6)
        for alpha in (0.0, 1.5, 3.0):
            fresh, found = recorded(model, src, alpha)
            for sentence, (hyp,) in enumerate(found):
                if finished_set(fresh, sentence) != finished_set(history, sentence):
                    continue
                compared += 1
                assert history.best_path(sentence, alpha) == hyp.tokens
                changed += hyp.tokens != history.best_path(sentence)
    assert compared >= 20 and changed >= 1  # the penalty did change some choices


def test_batched_sentences_record_the_trees_they_record_alone():
    model = model_of("transformer")
    torch.manual_seed(4)
    src = torch.randint(4, VOCAB, (3, 7))
    src[1, 4:] = 0
    together, _ = recorded(model, src, 0.6, top_k=3)
    for sentence in range(3):
        row = src[sentence : sentence + 1]
        alone, _ = recorded(model, row[:, : int((row != 0).sum())], 0.6, top_k=3)
        for mine, theirs in zip(together.steps[sentence], alone.steps[0], strict=True):
            for kind in ("kept", "finished", "pruned"):
                got, want = getattr(mine, kind), getattr(theirs, kind)
                assert [(n.token, n.parent, n.fate) for n in got] == [
                    (n.token, n.parent, n.fate) for n in want
                ]
                assert [n.log_prob for n in got] == pytest.approx([n.log_prob for n in want])
            assert [[a.token for a in options] for options in mine.alternatives] == [
                [a.token for a in options] for options in theirs.alternatives
            ]


def test_the_alternatives_are_each_live_hypothesis_top_k_next_tokens():
    model = model_of("bahdanau")
    torch.manual_seed(6)
    history, _ = recorded(model, torch.randint(4, VOCAB, (2, 6)), 0.6, top_k=5)
    for steps in history.steps:
        assert len(steps[0].alternatives[0]) == 5  # from the first step's one live hypothesis
        assert not any(steps[0].alternatives[1:])  # the others start at -inf
        for t in range(1, len(steps)):
            for candidate in steps[t].kept + steps[t].finished + steps[t].pruned:
                options = steps[t].alternatives[candidate.parent]
                values = [a.log_prob for a in options]
                assert values == sorted(values, reverse=True)
                if candidate.token_log_prob >= values[-1] + 1e-4:  # within the top 5
                    mine = {a.token: a.log_prob for a in options}
                    assert mine[candidate.token] == pytest.approx(
                        candidate.token_log_prob, abs=1e-4
                    )


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
    # From a forced prefix, as translate's prefixes force one.
    prefix_text = " ".join(best.split()[:2][::-1])
    prefix = translator.tokenizer.encode_tgt([prefix_text])[0]
    history, hyps = translator.recorded_search(sentence, prefix=prefix)
    forced = translator.translate([sentence], prefixes=[prefix_text])[0]
    assert translator.tokenizer.decode_tgt([history.best_path(0)])[0] == forced
    assert history.best_path(0)[: len(prefix)] == prefix


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
            assert len(row["sentences"]) == len(sources)
            for judged in row["sentences"]:  # the verdict is what the two scores say
                if judged["verdict"] != "exact":
                    wrong = judged["reference"] > judged["output"]
                    assert judged["verdict"] == ("search_errors" if wrong else "model_errors")


@pytest.mark.parametrize(
    ("beam", "reference", "expected"),
    [
        (1, [B], "search_errors"),  # greedy's A A A (.023) pruned B EOS (.36), the model's best
        (2, [B], "exact"),  # beam 2 finds it
        (2, [A, B], "model_errors"),  # A B EOS (.18): the model prefers B EOS, rightly searched
    ],
)
def test_a_reference_the_beam_pruned_is_a_search_error(beam, reference, expected):
    chain, src = ScriptedDecoder(), one_token_source()
    (best,) = decode_ids(chain, src, DecodeConfig(beam_size=beam, length_penalty=0.0), CPU)
    forced = score_pairs(chain, list(src), [torch.tensor(reference)], 100, CPU)
    (judged,) = judge([best[0]], [reference], forced, 0.0)
    assert judged["verdict"] == expected


def test_translate_records_each_lines_search_chunk_by_chunk(
    moved_checkpoint, tmp_path, capsys, monkeypatch
):
    translator = Translator.from_checkpoint(moved_checkpoint, "cpu")
    lines = (multi30k_lines("train", "de", 30) * 2)[:60]
    lines[7] = ""  # an empty line: no search, an empty record
    decode = replace(translator.config.decode, beam_size=2)
    config = TranslateConfig(decode=DecodeOverrides(beam_size=2), segment=False)
    sink, source = io.StringIO(), io.BytesIO("".join(f"{line}\n" for line in lines).encode())
    with (tmp_path / "trees.jsonl").open("w", encoding="utf-8") as record:
        chunks = replace(config, lines_per_batch=25)  # three chunks, each recorded and dropped
        translate_stream(translator, chunks, source, sink, "lines.de", None, record)
    assert sink.getvalue().splitlines() == translator.translate(lines, decode)  # unchanged
    records = [json.loads(line) for line in (tmp_path / "trees.jsonl").open(encoding="utf-8")]
    assert [r["line"] for r in records] == list(range(60)) and records[7]["steps"] == []
    for k in (0, 59):  # as the line's own recorded search, alone
        history, _ = translator.recorded_search(lines[k], decode)
        alone = history.as_json(0)
        assert [[n["token"] for n in s["kept"]] for s in records[k]["steps"]] == [
            [n["token"] for n in s["kept"]] for s in alone
        ]
        assert records[k]["predicted_ids"] == history.vistools(0)["predicted_ids"]
    # The command: the record file beside the output, refused without our beam search.
    source = write_lines(tmp_path / "in.de", lines[:5])
    args = [f"checkpoint={moved_checkpoint}", f"input={source}", "decode.beam_size=2"]
    args += [f"output={tmp_path / 'out.en'}", f"record={tmp_path / 'trees.jsonl'}"]
    done = run_in_process(translate.main, *args, capsys=capsys, monkeypatch=monkeypatch)
    assert done.returncode == 0, done.stderr
    assert len((tmp_path / "trees.jsonl").read_text().splitlines()) == 5
    greedy = run_in_process(
        translate.main, *args, "decode.beam_size=1", capsys=capsys, monkeypatch=monkeypatch
    )
    assert greedy.returncode == 1 and "a recorded search needs our beam search" in greedy.stderr


def test_record_memory_measures_the_recordings_heap_per_chunk_size(
    moved_checkpoint, memorise_root, tmp_path, monkeypatch
):
    args = ["--checkpoint", str(moved_checkpoint), "--data-root", str(memorise_root)]
    args += ["--sentences", "30", "--lines-per-batch", "5", "30", "--beam", "2"]
    args += ["--threads", "1", "--json", str(tmp_path / "memory.json")]
    monkeypatch.setattr(sys, "argv", ["record_memory.py", *args])
    runpy.run_path(str(REPO / "scripts" / "record_memory.py"), run_name="__main__")
    rows = json.loads((tmp_path / "memory.json").read_text())["rows"]
    assert [row["lines_per_batch"] for row in rows] == [5, 30]
    assert rows[0]["peak_heap_mb"] < rows[1]["peak_heap_mb"]  # a chunk's searches at a time
    # The same searches recorded (their floats' last digits differ with the batches')
    assert rows[0]["record_bytes"] == pytest.approx(rows[1]["record_bytes"], rel=0.01)
