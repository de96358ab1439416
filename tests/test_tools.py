"""mt.evaluate, mt.translate, mt.average and mt.compare as a user runs them, on a checkpoint
that has left its run directory."""

from __future__ import annotations

import fcntl
import gzip
import importlib
import json
import os
import pty
import shutil
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
import torch
from helpers import (
    assert_clean_failure,
    make_config,
    multi30k_lines,
    run_in_process,
    run_tool,
    write_lines,
)

from mt.common.checkpoint import load_checkpoint
from mt.decoding.translator import Translator
from mt.training.trainer import train


def test_evaluate_prints_what_sacrebleu_gives_on_its_files(moved_checkpoint, tmp_path):
    # 30 memorised sentences, 10 of them with someone else's reference: a middling BLEU.
    src = write_lines(tmp_path / "pairs.de", multi30k_lines("train", "de", 30))
    refs = multi30k_lines("train", "en", 20) + multi30k_lines("val", "en", 10)
    refs[:4] = [r.upper() for r in refs[:4]]  # only the lowercased BLEU forgives these
    ref = write_lines(tmp_path / "pairs.en", refs)
    hyps = tmp_path / "out" / "pairs.hyp"
    result = run_tool(
        "evaluate",
        f"checkpoint={moved_checkpoint}",
        f"src={src}",
        f"ref={ref}",
        f"hyps={hyps}",
        "decode.beam_size=2",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    printed = float(result.stdout.split()[1])
    assert 20 < printed < 90
    assert len(hyps.read_text(encoding="utf-8").splitlines()) == 30
    assert printed == pytest.approx(sacrebleu_cli(ref, hyps), abs=0.005 + 1e-9)
    metrics = json.loads((tmp_path / "out" / "pairs.hyp.metrics.json").read_text())
    assert metrics["bleu"] == pytest.approx(printed, abs=0.01)
    assert metrics["decode"]["beam_size"] == 2 and metrics["sentences"] == 30
    assert metrics["bleu_lc"] == pytest.approx(sacrebleu_cli(ref, hyps, "-lc"), abs=0.005)
    assert metrics["bleu_lc"] > metrics["bleu"] + 1
    assert f"BLEU lowercased {metrics['bleu_lc']:.2f} | nrefs:1|case:lc|" in result.stdout


def sacrebleu_cli(ref: Path, hyps: Path, *options: str) -> float:
    """BLEU as sacrebleu's own command line computes it."""
    command = [sys.executable, "-m", "sacrebleu", str(ref), "-i", str(hyps), "-m", "bleu"]
    done = subprocess.run(
        [*command, "-b", "-w", "4", *options], capture_output=True, text=True, check=True
    )
    return float(done.stdout)


def test_evaluate_a_split_of_the_checkpoints_own_data(memorised_run, moved_checkpoint, tmp_path):
    result = run_tool("evaluate", f"checkpoint={moved_checkpoint}", "split=valid", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout.split()[1]) > 90
    assert moved_checkpoint.with_name("model.valid.hyp").is_file()


def test_translate_keeps_every_line_in_place(moved_checkpoint, tmp_path):
    seen = multi30k_lines("train", "de", 30)
    very_long = " ".join(seen * 3)  # far over the source limit: its sentences one by one
    lines = [seen[0], "", seen[1], "   ", very_long, seen[2], ""]
    result = run_tool(
        "translate",
        f"checkpoint={moved_checkpoint}",
        "lines_per_batch=3",  # lines spread over several reads
        cwd=tmp_path,
        stdin="".join(line + "\n" for line in lines),
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout.split("\n")[:-1]
    assert len(out) == len(lines)
    assert [bool(line) for line in out] == [True, False, True, False, True, True, False]
    assert len(out[4].split()) > 0.8 * len(very_long.split())  # all of it, nothing cut
    # The memorised model reproduces its references, so each output sits at its input's line.
    refs = multi30k_lines("train", "en", 3)
    assert sum(out[i] == refs[k] for k, i in enumerate((0, 2, 5))) >= 2
    # The Python API gives the same translations (of the lines that are one sentence).
    api = Translator.from_checkpoint(moved_checkpoint).translate(lines)
    assert api[:4] + api[5:] == out[:4] + out[5:]


def test_translate_nbest_lists_distinct_hypotheses_best_first(moved_checkpoint, tmp_path):
    sentences = multi30k_lines("train", "de", 2)
    source = write_lines(tmp_path / "in.de", [sentences[0], "", sentences[1]])
    output = tmp_path / "out.en"
    result = run_tool(
        "translate",
        f"checkpoint={moved_checkpoint}",
        f"input={source}",
        f"output={output}",
        "decode.beam_size=4",
        "decode.nbest=3",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in output.read_text(encoding="utf-8").splitlines()]
    assert [int(r[0]) for r in rows] == [0, 0, 0, 1, 2, 2, 2]
    for line in (0, 2):
        scores = [float(r[1]) for r in rows if int(r[0]) == line]
        texts = [r[2] for r in rows if int(r[0]) == line]
        assert scores == sorted(scores, reverse=True)
        assert len(set(texts)) == 3


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["checkpoint=missing.pt"], ["missing.pt: checkpoint not found"]),
        (["decode.beam_size=2", "decode.nbest=3"], ["decode.nbest=3 exceeds decode.beam_size=2"]),
        (["decode.beem_size=2"], ["beem_size"]),
        (["+decode.beem_size=2"], ["decode.beem_size: not a key of DecodeOverrides"]),
        (["src=pairs.de"], ["give both src=FILE and ref=FILE"]),
        (["src=pairs.de", "ref=short.en"], ["pairs.de has 3 lines but", "short.en has 2"]),
        (["checkpoint=corrupt.pt"], ["corrupt.pt: not a readable checkpoint"]),
        (["engine=ctranslate2"], ["engine=ctranslate2 needs model_dir=PATH"]),
        (
            ["engine=ctranslate2", "checkpoint=null", "model_dir=nowhere"],
            ["nowhere: not a model directory written by mt.export"],
        ),
    ],
)
def test_evaluate_refuses_bad_arguments_in_one_line(moved_checkpoint, tmp_path, args, needles):
    write_lines(tmp_path / "pairs.de", ["a", "b", "c"])
    write_lines(tmp_path / "short.en", ["a", "b"])
    (tmp_path / "corrupt.pt").write_bytes(b"\x00" * 64)
    result = run_tool("evaluate", f"checkpoint={moved_checkpoint}", *args, cwd=tmp_path)
    assert_clean_failure(result, *needles)


def test_translate_fails_cleanly_and_leaves_the_output_alone(tmp_path):
    output = write_lines(tmp_path / "precious.txt", ["keep me"])
    result = run_tool(
        "translate", "checkpoint=missing.pt", f"output={output}", cwd=tmp_path, stdin="Hallo\n"
    )
    assert_clean_failure(result, "missing.pt: checkpoint not found")
    assert output.read_text(encoding="utf-8") == "keep me\n"


def test_a_translate_that_fails_midway_names_the_line_and_keeps_the_old_output(
    moved_checkpoint, tmp_path
):
    # Line 1200 is Latin-1, past the first batch of lines and the first read buffer.
    good = "".join(line + "\n" for line in multi30k_lines("train", "de", 2) * 600)
    source = tmp_path / "in.de"
    source.write_bytes(good.encode() + "Grüße\n".encode("latin-1"))
    output = write_lines(tmp_path / "precious.en", ["keep me"])
    result = run_tool(
        "translate",
        f"checkpoint={moved_checkpoint}",
        f"input={source}",
        f"output={output}",
        "decode.beam_size=1",
        cwd=tmp_path,
    )
    assert_clean_failure(result, f"{source}:1201: not valid UTF-8")
    assert output.read_text(encoding="utf-8") == "keep me\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.de", "precious.en"]  # no temp


@pytest.mark.parametrize(
    ("tool", "args", "victim", "needle"),
    [
        ("translate", ["input={src}", "output={src}"], "src", "output={src} is also input="),
        ("evaluate", ["src={src}", "ref={ref}", "hyps={ref}"], "ref", "hyps={ref} is also ref="),
        (
            "evaluate",
            ["src={src}", "ref={ref}", "metrics={src}"],
            "src",
            "metrics={src} is also src=",
        ),
    ],
)
def test_an_output_path_that_is_an_input_is_refused(
    moved_checkpoint, tmp_path, capsys, monkeypatch, tool, args, victim, needle
):
    paths = {
        "src": write_lines(tmp_path / "in.de", multi30k_lines("train", "de", 3)),
        "ref": write_lines(tmp_path / "ref.en", multi30k_lines("train", "en", 3)),
    }
    before = paths[victim].read_bytes()
    args = [f"checkpoint={moved_checkpoint}", *(a.format(**paths) for a in args)]
    monkeypatch.chdir(tmp_path)
    main = importlib.import_module(f"mt.{tool}").main
    result = run_in_process(main, *args, capsys=capsys, monkeypatch=monkeypatch)
    assert_clean_failure(result, needle.format(**paths))
    assert paths[victim].read_bytes() == before


def test_a_byte_order_mark_is_not_part_of_the_first_reference(moved_checkpoint, tmp_path):
    src = write_lines(tmp_path / "in.de", multi30k_lines("train", "de", 10))
    plain = write_lines(tmp_path / "plain.en", multi30k_lines("train", "en", 10))
    marked = tmp_path / "marked.en"
    marked.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    printed = []
    for ref in (plain, marked):
        result = run_tool(
            "evaluate",
            f"checkpoint={moved_checkpoint}",
            f"src={src}",
            f"ref={ref}",
            f"hyps={tmp_path / ref.stem}.hyp",
            "decode.beam_size=1",
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        printed.append(result.stdout.splitlines()[0])
    assert printed[0] == printed[1]


def test_training_keeps_the_last_checkpoints_for_averaging(memorised_run):
    run_dir, _ = memorised_run
    kept = sorted(p.name for p in (run_dir / "checkpoints").glob("step-*.pt"))
    assert kept == ["step-100.pt", "step-150.pt"]  # keep_last=2; step-50.pt was pruned


def test_averaging_two_checkpoints_gives_the_mean_of_their_weights(memorised_run, tmp_path):
    run_dir, _ = memorised_run
    first, second = (run_dir / "checkpoints" / f"step-{step}.pt" for step in (100, 150))
    averaged = tmp_path / "avg.pt"
    result = run_tool("average", str(first), str(second), "-o", str(averaged), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    a, b = load_checkpoint(first)["model"], load_checkpoint(second)["model"]
    mean = load_checkpoint(averaged)["model"]
    assert any(not torch.equal(a[name], b[name]) for name in a)  # two different models
    for name, weights in mean.items():
        torch.testing.assert_close(weights, (a[name] + b[name]) / 2, rtol=0, atol=1e-6)
    before = first.read_bytes()
    refused = run_tool("average", str(first), str(second), "-o", str(first), cwd=tmp_path)
    assert_clean_failure(refused, "is one of the checkpoints to average")
    assert first.read_bytes() == before


def test_averaging_a_run_directory_takes_its_newest_snapshots(memorised_run, tmp_path):
    run_dir, _ = memorised_run
    averaged = tmp_path / "avg.pt"
    result = run_tool("average", str(run_dir), "--last", "2", "-o", str(averaged), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert load_checkpoint(averaged)["averaged_from"] == [
        str(run_dir / "checkpoints" / f"step-{step}.pt") for step in (100, 150)
    ]
    evaluated = run_tool("evaluate", f"checkpoint={averaged}", "decode.beam_size=2", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert float(evaluated.stdout.split()[1]) > 50


def test_averaging_refuses_another_vocabulary(memorise_root, cache_dir, moved_checkpoint, tmp_path):
    config = make_config(
        memorise_root,
        "tiny",
        cache_dir,
        "trainer.max_steps=1",
        "data.vocab_size=200",
        "decode.beam_size=1",
        "decode.max_len_a=0",
        "decode.max_len_b=2",
    )
    train(config, tmp_path / "other")
    other = tmp_path / "other" / "checkpoints" / "last.pt"
    result = run_tool("average", str(other), str(moved_checkpoint), "-o", "avg.pt", cwd=tmp_path)
    assert_clean_failure(result, "another vocabulary")
    assert not (tmp_path / "avg.pt").exists()


def test_compare_tabulates_every_run_of_a_multirun(memorised_run, tmp_path):
    run_dir, results = memorised_run
    for name in ("model=rnn", "model=transformer"):
        (tmp_path / "multirun" / name).mkdir(parents=True)
        shutil.copy(run_dir / "results.json", tmp_path / "multirun" / name / "results.json")
    result = run_tool("compare", str(tmp_path / "multirun"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    table = result.stdout.splitlines()
    assert table[0].startswith("| run | model | params | valid BLEU | test BLEU")
    assert len(table) == 4 and "model=rnn" in table[2] and "model=transformer" in table[3]
    assert f"| {results['test']['bleu']:.2f} |" in table[2]
    empty = run_tool("compare", str(tmp_path), "nowhere", cwd=tmp_path)
    assert_clean_failure(empty, "nowhere: not a directory")
    # An ensemble's scores are read as results are: one without its members is named.
    damaged = tmp_path / "multirun" / "transformer-ensemble-seeds1-2.json"
    damaged.write_text(json.dumps({"bleu": 1.0, "chrf": 2.0}))
    refused = run_tool("compare", str(tmp_path / "multirun"), cwd=tmp_path)
    assert_clean_failure(refused, f"{damaged}: not an mt ensemble results file (no members)")


def test_every_tool_decodes_the_reported_model_as_the_run_reported(
    chosen_run, small_root, tmp_path
):
    run_dir, results = chosen_run
    final = run_dir / results["final"]
    decode = load_checkpoint(final)["config"]["decode"]
    assert decode["length_penalty"] == results["selection"]["length_penalty"]
    assert (decode["beam_size"], decode["max_len_a"], decode["max_len_b"]) == (2, 1.0, 5)
    # No decode option: the checkpoint's settings, so the run's own test BLEU and hypotheses.
    hyps = tmp_path / "test.hyp"
    evaluated = run_tool("evaluate", f"checkpoint={final}", f"hyps={hyps}", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads((tmp_path / "test.hyp.metrics.json").read_text())
    assert metrics["bleu"] == results["test"]["bleu"]
    assert f"BLEU {results['test']['bleu']:.2f} |" in evaluated.stdout
    assert hyps.read_text() == (run_dir / "test.hyp.en").read_text()
    source = small_root / "small" / "test_2016_flickr.de"
    translated = run_tool("translate", f"checkpoint={final}", f"input={source}", cwd=tmp_path)
    assert translated.returncode == 0, translated.stderr
    assert translated.stdout == hyps.read_text()
    # A decode option given on the command line wins over the checkpoint's.
    shorter = run_tool(
        "translate",
        f"checkpoint={final}",
        f"input={source}",
        "decode.max_len_a=0",
        "decode.max_len_b=2",
        cwd=tmp_path,
    )
    assert shorter.returncode == 0, shorter.stderr
    assert len(shorter.stdout) < len(translated.stdout)


def test_a_truncated_gz_input_is_named_and_nothing_is_written(
    moved_checkpoint, tmp_path, capsys, monkeypatch
):
    whole = gzip.compress("".join(s + "\n" for s in multi30k_lines("train", "de", 200)).encode())
    source = tmp_path / "in.de.gz"
    source.write_bytes(whole[: len(whole) // 2])
    monkeypatch.chdir(tmp_path)
    args = [f"checkpoint={moved_checkpoint}", f"input={source}", "output=out.en"]
    main = importlib.import_module("mt.translate").main
    result = run_in_process(main, *args, capsys=capsys, monkeypatch=monkeypatch)
    assert_clean_failure(result, f"error: {source}: cannot read it (")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.en").exists()


def run_at_terminal(command: list[str], cwd) -> tuple[int, str]:
    """command with its stderr on a pseudo-terminal (as a user's shell has it): its exit
    status and what the terminal showed."""
    terminal, child_side = pty.openpty()
    # 24 rows of 100 columns, as a terminal window has (a new pseudo-terminal has none).
    fcntl.ioctl(child_side, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=child_side)
    os.close(child_side)
    shown = b""
    while True:
        try:
            chunk = os.read(terminal, 65536)
        except OSError:  # the child closed the terminal's other side
            break
        if not chunk:
            break
        shown += chunk
    os.close(terminal)
    return process.wait(timeout=300), shown.decode("utf-8", "replace")


def test_long_work_shows_a_bar_at_a_terminal_and_none_elsewhere(moved_checkpoint, tmp_path):
    source = write_lines(tmp_path / "in.de", multi30k_lines("train", "de", 30))
    command = [sys.executable, "-m", "mt.translate", f"checkpoint={moved_checkpoint}"]
    command += [f"input={source}"]
    status, shown = run_at_terminal([*command, f"output={tmp_path / 'tty.en'}"], tmp_path)
    assert status == 0, shown
    assert "decoding:" in shown and "/30 [" in shown and "sent/s]" in shown  # tqdm's bar
    piped = subprocess.run(
        [*command, f"output={tmp_path / 'piped.en'}"], cwd=tmp_path, capture_output=True, text=True
    )
    assert piped.returncode == 0 and "decoding" not in piped.stderr + piped.stdout
    # The bar never reaches an output file: both hold the translations alone.
    tty, plain = (tmp_path / "tty.en").read_text(), (tmp_path / "piped.en").read_text()
    assert tty == plain and len(plain.splitlines()) == 30 and "\r" not in plain
