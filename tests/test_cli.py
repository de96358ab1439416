"""`python -m mt.train` as a user runs it: bad settings stop at start-up with one clear line."""

from __future__ import annotations

import importlib
import json
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from helpers import (
    REPO,
    TINY,
    assert_clean_failure,
    free_port,
    make_config,
    run_in_process,
    run_train,
)
from omegaconf import OmegaConf

from mt import train as train_command
from mt.common.checkpoint import load_checkpoint
from mt.common.errors import MTError
from mt.config.store import HYDRA_COMMANDS


@pytest.fixture
def train_in_process(tmp_path, capsys, monkeypatch):
    """`python -m mt.train ARGS` run in this process from tmp_path, its run directory there."""
    monkeypatch.chdir(tmp_path)

    def run(*overrides: str):
        args = [*overrides, f"hydra.run.dir={tmp_path / 'run'}"]
        return run_in_process(train_command.main, *args, capsys=capsys, monkeypatch=monkeypatch)

    return run


def tiny_data(root, tmp_path) -> list[str]:
    """Overrides that point a run at the tiny corpus with a private cache."""
    return [f"data.root={root}", "data.name=tiny", f"data.cache_dir={tmp_path / 'cache'}"]


@pytest.mark.parametrize("experiment", ["transformer", "rnn", "bahdanau"])
def test_misspelled_key_in_experiment_names_the_key(train_in_process, experiment):
    result = train_in_process(f"+experiment={experiment}", "model.num_head=4")
    assert_clean_failure(result, "num_head")


@pytest.mark.parametrize(
    ("added", "needle"),
    [
        ("+model.num_head=4", "error: model.num_head: not a key of TransformerConfig"),
        ("+trainer.warmup=10", "error: trainer.warmup: not a key of TrainerConfig"),
        ("+colour=blue", "error: colour: not a key of Config"),
    ],
)
def test_a_key_added_with_plus_is_refused_like_a_typo(train_in_process, tmp_path, added, needle):
    result = train_in_process("+experiment=transformer", added)
    assert_clean_failure(result, needle)
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("trainer.warmup_steps=0", "trainer.warmup_steps=0: must be in [1, 1000000000]"),
        ("trainer.lr=-0.001", "trainer.lr=-0.001: must be > 0"),
        ("trainer.label_smoothing=1.0", "trainer.label_smoothing=1.0: must be in [0, 1)"),
        ("trainer.valid_every=0", "trainer.valid_every=0: must be in [1, 1000000000]"),
        ("trainer.max_steps=0", "trainer.max_steps=0: must be in [1, 1000000000]"),
        ("trainer.max_steps=10000000000", "trainer.max_steps=10000000000: must be in [1, 1000"),
        ("model.dropout=-0.1", "model.dropout=-0.1: must be in [0, 1)"),
        ("data.max_len=0", "data.max_len=0: must be in [1, 65536]"),
        ("decode.max_len_a=-1", "decode.max_len_a=-1.0: must be in [0, 100]"),
        ("decode.beam_size=1000000", "decode.beam_size=1000000: must be in [1, 1000]"),
        ("model.d_model=1000000", "model.d_model=1000000: must be in [1, 16384]"),
        ("trainer.seed=12345678901234567890123", "trainer.seed=12345678901234567890123: must be"),
        ("trainer.lr=inf", "trainer.lr=inf: must be a finite number"),
        ("trainer.lr=nan", "trainer.lr=nan: must be > 0"),
        ("decode.max_len_a=inf", "decode.max_len_a=inf: must be in [0, 100]"),
        ("trainer.max_minutes=inf", "trainer.max_minutes=inf: must be in [1e-09, 100000000]"),
    ],
)
def test_each_out_of_range_setting_is_named(memorise_root, cache_dir, setting, message):
    with pytest.raises(MTError, match=re.escape(message)):
        make_config(memorise_root, "tiny", cache_dir, setting)


def test_wrong_type_names_the_key(train_in_process):
    result = train_in_process("+experiment=transformer", "model.d_model=wide")
    assert_clean_failure(result, "d_model", "wide")


def test_unknown_experiment_is_refused(train_in_process):
    assert_clean_failure(train_in_process("+experiment=transformr"), "experiment/transformr")


def test_cross_field_error_is_one_line(train_in_process):
    result = train_in_process("+experiment=transformer", "model.num_heads=7")
    assert_clean_failure(result, "error: model.d_model=256 is not divisible by model.num_heads=7")


def test_missing_data_names_the_files(train_in_process, tmp_path):
    result = train_in_process(
        "+experiment=transformer", f"data.root={tmp_path}", "data.download=false"
    )
    assert_clean_failure(result, f"missing {tmp_path}/multi30k/train.de")
    assert result.stderr.count("\n") == 1


def test_failed_download_says_where_to_put_the_files(train_in_process, tmp_path):
    """The download fails for real, from a closed port on this machine: with or without a
    network, no test reaches the internet."""
    url = f"http://127.0.0.1:{free_port()}/{{file}}"
    result = train_in_process(
        "+experiment=transformer", f"data.root={tmp_path}", f'data.download_url="{url}"'
    )
    assert_clean_failure(result, "download failed", f"in {tmp_path}/multi30k")
    assert "point data.root at the directory that holds multi30k/" in result.stderr
    assert "downloading Multi30k's train.de.gz" in result.stdout + result.stderr  # said first
    assert not list((tmp_path / "multi30k").glob("*.part"))  # no half file left behind


def test_a_download_url_without_its_file_field_is_refused(train_in_process, tmp_path):
    result = train_in_process(
        "+experiment=transformer", f"data.root={tmp_path}", "data.download_url=http://x/a.gz"
    )
    assert_clean_failure(result, "error: data.download_url=http://x/a.gz: needs {file}")


def test_main_job_prints_test_bleu_and_fills_its_run_directory(memorise_root, tmp_path):
    run_dir = tmp_path / "run"
    result = run_train(
        "+experiment=transformer",
        *TINY,
        *tiny_data(memorise_root, tmp_path),
        "trainer.max_steps=4",
        "trainer.valid_every=2",
        "decode.max_len_a=0",
        "decode.max_len_b=3",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    results = json.loads((run_dir / "results.json").read_text())
    assert f"test BLEU {results['test']['bleu']:.2f} |" in result.stdout
    last = (run_dir / "train.log").read_text().splitlines()[-1]
    assert last.endswith(
        f"reported model: {run_dir / results['final']} (best.pt, length penalty 1, chosen on valid)"
    )
    assert results["test"]["signature"] in result.stdout
    # What made the numbers: the commit of this checkout, the whole config, torch, threads.
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    assert results["commit"].removesuffix("-dirty") == head.stdout.strip()
    assert results["config"]["trainer"]["max_steps"] == 4
    assert results["config"]["model_name"] == "transformer"
    assert results["torch"] == torch.__version__
    assert results["threads"] == 1  # trainer.num_threads=1 in the tiny settings
    assert results["wall_seconds"] >= results["train_seconds"]
    resolved = OmegaConf.load(run_dir / "config.yaml")
    assert resolved["trainer"]["max_steps"] == 4
    assert resolved["data"]["root"] == str(memorise_root)
    assert {"last.pt", "best.pt"} <= {p.name for p in (run_dir / "checkpoints").iterdir()}
    assert list((run_dir / "tb").glob("events.out.tfevents.*"))
    assert (run_dir / "train.log").read_text().count("valid step") == 2
    assert not (run_dir / ".lock").exists()

    # The same command again would train from scratch over the finished run: refused, with
    # every file as it was.
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    again = run_train(*result.args[3:], cwd=tmp_path)
    assert_clean_failure(again, f"{run_dir} holds a trained run", "trainer.resume=true")
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before

    # Resumed further, the run keeps config.yaml as it started (what a study compares); its
    # results hold the settings it ended with.
    more = run_train(*result.args[3:], "trainer.resume=true", "trainer.max_steps=6", cwd=tmp_path)
    assert more.returncode == 0, more.stderr
    assert (run_dir / "config.yaml").read_bytes() == before[run_dir / "config.yaml"]
    ended = json.loads((run_dir / "results.json").read_text())
    assert ended["config"]["trainer"]["max_steps"] == ended["steps"] == 6


def test_a_second_live_run_in_one_directory_is_refused(memorise_root, tmp_path):
    run_dir = tmp_path / "run"
    command = [
        "+experiment=transformer",
        *TINY,
        *tiny_data(memorise_root, tmp_path),
        "trainer.max_steps=100000",
        "trainer.valid_every=100000",
        f"hydra.run.dir={run_dir}",
    ]
    first = subprocess.Popen(
        [sys.executable, "-m", "mt.train", *command],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (run_dir / ".lock").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    second = run_train(*command, cwd=tmp_path)
    assert_clean_failure(second, "another run is training here", f"{first.pid}@")
    # The refused run took nothing from the live one: it is still training, and stops
    # as any run does, with its last.pt saved and its lock given back.
    assert first.poll() is None
    log, deadline = run_dir / "train.log", time.monotonic() + 120
    while not (log.exists() and "| loss" in log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "| loss" in log.read_text(), "the live run logged no step"
    first.send_signal(signal.SIGTERM)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 128 + signal.SIGTERM, err
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["progress"]["step"] > 0
    assert not (run_dir / ".lock").exists()


def test_one_multirun_trains_all_three_architectures(memorise_root, tmp_path):
    """The comparison the project exists for, in one command, then in one table."""
    shared = [o for o in TINY if not o.startswith("model.")]
    result = run_train(
        "-m",
        "+experiment=rnn,bahdanau,transformer",
        *shared,
        *tiny_data(memorise_root, tmp_path),
        "trainer.max_steps=2",
        "trainer.valid_every=2",
        "decode.beam_size=1",
        "decode.max_len_a=0",
        "decode.max_len_b=2",
        f"hydra.sweep.dir={tmp_path / 'multirun'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    runs = sorted(p.name for p in (tmp_path / "multirun").iterdir() if p.is_dir())
    assert runs == ["0_rnn", "1_bahdanau", "2_transformer"]
    results = [json.loads((tmp_path / "multirun" / r / "results.json").read_text()) for r in runs]
    models = {r["model"] for r in results}
    assert models == {"bahdanau", "rnn", "transformer"}
    table = subprocess.run(
        [sys.executable, "-m", "mt.compare", str(tmp_path / "multirun")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert len(table) == 2 + 3
    # Each row holds its own run's figures, commit included.
    for line, run, result in zip(table[2:], runs, results, strict=True):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[0].endswith(run) and cells[1] == result["model"]
        assert cells[3:7] == [
            f"{result['valid']['bleu']:.2f}",
            f"{result['test']['bleu']:.2f}",
            f"{result['test']['chrf']:.2f}",
            f"{result['test']['bleu_lc']:.2f}",
        ]
        assert cells[7] == str(result["steps"]) == "2"
        chosen = result["selection"]  # by the recipe: best.pt or averaged.pt, and a penalty
        assert cells[8] == f"{chosen['checkpoint']}, lp {chosen['length_penalty']:g}"
        assert cells[-1] == result["commit"][:10]


def test_every_commands_help_says_what_it_does_with_examples_then_its_settings(capsys, monkeypatch):
    for command in [*HYDRA_COMMANDS, "average", "compare", "study"]:
        module = importlib.import_module(f"mt.{command}")
        done = run_in_process(module.main, "--help", capsys=capsys, monkeypatch=monkeypatch)
        assert done.returncode == 0, (command, done.stderr)
        first = module.__doc__.strip().splitlines()[0]
        text = done.stdout
        # argparse opens with its usage line, Hydra with the docstring itself.
        assert first in text.splitlines()[:8], command
        if command in HYDRA_COMMANDS:
            assert text.startswith(first) and "Examples:" in text, command
            assert "== Settings (KEY=VALUE" in text and "\n$CONFIG" not in text, command
        # Only the commands that take a recipe offer the recipes.
        assert ("experiment: " in text) == (command in ("train", "prepare")), command


@pytest.mark.parametrize(
    "command", ["translate", "evaluate", "export", "score", "serve", "distill"]
)
def test_a_tool_refuses_a_recipe_in_one_line_naming_why(command, capsys, monkeypatch):
    module = importlib.import_module(f"mt.{command}")
    result = run_in_process(
        module.main, "+experiment=transformer", capsys=capsys, monkeypatch=monkeypatch
    )
    assert_clean_failure(result, f"error: +experiment=transformer: mt.{command} takes no recipe")
    assert result.stderr.count("\n") == 1


def test_a_commands_exit_skips_the_last_garbage_collection():
    # A cycle whose finaliser prints: collected at exit in a plain process, passed over once
    # a command has started (mt.common.errors.reported freezes the heap at exit).
    cycle = (
        "class Cycle:\n    def __del__(self): print('collected')\n"
        "a, b = Cycle(), Cycle(); a.other, b.other = b, a; del a, b\n"
    )
    plain = subprocess.run([sys.executable, "-c", cycle], capture_output=True, text=True)
    assert plain.stdout == "collected\ncollected\n"
    command = "from mt.common.errors import reported\nwith reported():\n    pass\n" + cycle
    quick = subprocess.run([sys.executable, "-c", command], capture_output=True, text=True)
    assert quick.returncode == 0 and quick.stdout == ""
