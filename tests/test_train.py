"""The training loop end to end on tiny real data: memorise, checkpoint, log, resume."""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import sacrebleu
import torch
from helpers import REPO, leftover_temporaries, make_config, multi30k_lines, scalars, write_corpus
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mt.common.checkpoint import load_checkpoint, save_checkpoint
from mt.common.errors import MTError
from mt.common.files import temporary_path
from mt.common.runtime import source_commit
from mt.training.reporting import duration
from mt.training.trainer import train


def test_tiny_model_memorises_thirty_pairs(memorised_run, memorise_root):
    run_dir, results = memorised_run
    assert results["test"]["bleu"] > 90
    assert results["test"]["signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    written = json.loads((run_dir / "results.json").read_text())
    assert set(written) >= {"valid", "test", "steps", "train_seconds", "params"}
    assert written["steps"] == 150
    # The printed BLEU is sacrebleu's on the written hypotheses and the raw references.
    hyps = (run_dir / "test.hyp.en").read_text(encoding="utf-8").splitlines()
    refs = (memorise_root / "tiny" / "test_2016_flickr.en").read_text(encoding="utf-8")
    assert sacrebleu.corpus_bleu(hyps, [refs.splitlines()]).score == pytest.approx(
        written["test"]["bleu"]
    )


@pytest.mark.parametrize("experiment", ["rnn", "bahdanau"])
def test_recurrent_models_memorise_thirty_pairs(experiment, memorise_root, cache_dir, tmp_path):
    config = make_config(
        memorise_root,
        "tiny",
        cache_dir,
        "trainer.max_steps=300",
        "trainer.valid_every=100",
        experiment=experiment,
    )
    # An untrained model scores near 0. Bahdanau reached 92.75 in fp32 and 89.98 in bf16,
    # which training uses on CPUs with bf16 instructions: one sentence short of perfect.
    assert train(config, tmp_path)["test"]["bleu"] > 85
    images = EventAccumulator(str(tmp_path / "tb")).Reload().Tags()["images"]
    # Bahdanau draws its alignment at every validation; the RNN has no attention to draw.
    drawn = {"attention/alignment/0", "attention/alignment/1"}
    assert set(images) == (drawn if experiment == "bahdanau" else set())


def test_checkpoints_load_with_weights_only_and_carry_everything(memorised_run):
    run_dir, _ = memorised_run
    for name in ("last.pt", "best.pt"):
        payload = torch.load(run_dir / "checkpoints" / name, weights_only=True)
        assert {"config", "tokenizer", "model", "optimizer", "progress"} <= set(payload)
        assert payload["tokenizer"]["src"].startswith(b"\n")  # a serialised sentencepiece proto
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["progress"]["step"] == 150
    assert leftover_temporaries(run_dir) == []


def test_the_leftover_check_finds_the_temporary_a_killed_save_leaves(tmp_path):
    # A save killed between writing and renaming leaves its temporary under the name the
    # atomic writer gives it: the check above must see exactly that name.
    target = tmp_path / "checkpoints" / "last.pt"
    target.parent.mkdir()
    temporary_path(target).write_bytes(b"half a checkpoint")
    assert leftover_temporaries(tmp_path) == [temporary_path(target)]


def test_tensorboard_reader_loads_curves_and_samples(memorised_run):
    run_dir, _ = memorised_run
    events = EventAccumulator(str(run_dir / "tb")).Reload()
    tags = events.Tags()
    for tag in (
        "train/loss",
        "train/lr",
        "train/grad_norm",
        "train/tokens_per_sec",
        "valid/loss",
        "valid/ppl",
        "valid/bleu",
        "valid/chrf",
    ):
        assert tag in tags["scalars"], tag
    assert "valid/samples/text_summary" in tags["tensors"]
    assert {
        "attention/layer1/cross_attention/0",
        "attention/layer2/cross_attention/1",
        "attention/layer2/cross_attention_per_head/0",
    } <= set(tags["images"])
    averaged = events.Images("attention/layer2/cross_attention/0")
    assert [e.step for e in averaged] == [50, 100, 150]
    picture = Image.open(io.BytesIO(averaged[-1].encoded_image_string)).convert("L")
    weights = np.asarray(picture)
    assert picture.size == (averaged[-1].width, averaged[-1].height)
    assert weights.min() < 128 < weights.max()  # dark cells (attended) on a white ground
    losses = scalars(run_dir, "train/loss")
    assert losses[150] < losses[1] / 5
    assert sorted(scalars(run_dir, "valid/bleu")) == [50, 100, 150]


def test_resume_continues_with_the_same_next_loss(memorise_root, cache_dir, tmp_path):
    # Short outputs: decoding is not what this test is about. Dropout on: the resumed run
    # must draw the same dropout masks, so the random state must be restored too.
    common = [
        "model.dropout=0.3",
        "trainer.valid_every=3",
        "decode.beam_size=1",
        "decode.max_len_a=0",
        "decode.max_len_b=3",
    ]
    straight = tmp_path / "straight"
    train(make_config(memorise_root, "tiny", cache_dir, "trainer.max_steps=6", *common), straight)
    interrupted = tmp_path / "interrupted"
    train(
        make_config(memorise_root, "tiny", cache_dir, "trainer.max_steps=3", *common), interrupted
    )
    train(
        make_config(
            memorise_root, "tiny", cache_dir, "trainer.max_steps=6", "trainer.resume=true", *common
        ),
        interrupted,
    )
    expected, resumed = scalars(straight, "train/loss"), scalars(interrupted, "train/loss")
    assert sorted(resumed) == [1, 2, 3, 4, 5, 6]
    for step in (4, 5, 6):
        assert resumed[step] == pytest.approx(expected[step], rel=1e-6)
    results = json.loads((interrupted / "results.json").read_text())
    assert results["commits"] == [results["commit"]]  # one code, however many stretches


def resume_after_one_step(root, cache_dir, run_dir, change: str):
    """Train one step into run_dir, then resume it with settings changed (space-separated)."""
    short = ["decode.beam_size=1", "decode.max_len_a=0", "decode.max_len_b=2"]
    train(make_config(root, "tiny", cache_dir, "trainer.max_steps=1", *short), run_dir)
    resumed = ["trainer.max_steps=2", "trainer.resume=true", *change.split(), *short]
    train(make_config(root, "tiny", cache_dir, *resumed), run_dir)


def test_resume_logs_the_settings_it_changes_and_applies_them(
    memorise_root, cache_dir, tmp_path, caplog
):
    straight = tmp_path / "straight"
    short = ["decode.beam_size=1", "decode.max_len_a=0", "decode.max_len_b=2"]
    train(make_config(memorise_root, "tiny", cache_dir, "trainer.max_steps=2", *short), straight)
    changed = ["trainer.lr=1e-3", "model.dropout=0.2", "trainer.weight_decay=0.01"]
    with caplog.at_level(logging.WARNING, logger="mt"):
        resume_after_one_step(memorise_root, cache_dir, tmp_path / "resumed", " ".join(changed))
    (line,) = [r.getMessage() for r in caplog.records if "changed settings" in r.getMessage()]
    assert "model.dropout: 0.0 -> 0.2; trainer.lr: 0.003 -> 0.001" in line
    assert "trainer.max_steps: 1 -> 2" in line and "trainer.weight_decay: 0.0 -> 0.01" in line
    assert "trainer.resume" not in line
    # The new learning rate is the one trained with, on the same schedule.
    resumed, expected = scalars(tmp_path / "resumed", "train/lr"), scalars(straight, "train/lr")
    assert resumed[2] == pytest.approx(expected[2] / 3, rel=1e-6)


def test_a_resumed_run_keeps_the_batching_it_began_with(memorise_root, cache_dir, tmp_path, caplog):
    # Begun with fixed shapes (a GPU's plan), resumed where the settings say otherwise (a
    # CPU's): the epoch goes on cut as it began, with a warning, and results.json says so.
    short = ["decode.beam_size=1", "decode.max_len_a=0", "decode.max_len_b=2"]
    fixed = ["trainer.max_steps=1", "data.fixed_shapes=true", *short]
    train(make_config(memorise_root, "tiny", cache_dir, *fixed), tmp_path)
    again = ["trainer.max_steps=2", "trainer.resume=true", "data.fixed_shapes=false", *short]
    with caplog.at_level(logging.WARNING, logger="mt"):
        train(make_config(memorise_root, "tiny", cache_dir, *again), tmp_path)
    warned = [r.getMessage() for r in caplog.records if "as this run began" in r.getMessage()]
    assert len(warned) == 1 and "data.fixed_shapes=True" in warned[0]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["step_plan"] == {"compiled": False, "fixed_shapes": True}


def test_a_resumed_run_records_each_commit_it_trained_under(memorise_root, cache_dir, tmp_path):
    short = ["decode.beam_size=1", "decode.max_len_a=0", "decode.max_len_b=2"]
    train(make_config(memorise_root, "tiny", cache_dir, "trainer.max_steps=1", *short), tmp_path)
    last = tmp_path / "checkpoints" / "last.pt"
    payload = torch.load(last, weights_only=True)
    assert payload["progress"]["commits"] == [source_commit()]
    payload["progress"]["commits"] = ["f" * 40]  # as if trained by other code until now
    torch.save(payload, last)
    resumed = ["trainer.max_steps=2", "trainer.resume=true", *short]
    train(make_config(memorise_root, "tiny", cache_dir, *resumed), tmp_path)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["commits"] == ["f" * 40, source_commit()]
    assert results["commit"] == source_commit()


def test_resume_refuses_a_checkpoint_from_another_vocabulary(memorise_root, cache_dir, tmp_path):
    with pytest.raises(MTError, match="another vocabulary"):
        resume_after_one_step(memorise_root, cache_dir, tmp_path, "data.vocab_size=200")


def test_resume_refuses_weights_of_another_model_size(memorise_root, cache_dir, tmp_path):
    with pytest.raises(MTError, match="last.pt: weights do not fit the configured model"):
        resume_after_one_step(memorise_root, cache_dir, tmp_path, "model.ff_dim=96")


def test_failed_save_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint({"model": {"w": torch.ones(3)}}, path)
    # A lambda cannot be pickled: the save dies midway through writing.
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        save_checkpoint({"model": {"w": torch.zeros(3)}, "bad": lambda: None}, path)
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_corrupt_checkpoint_gives_one_clear_error(tmp_path):
    path = tmp_path / "best.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(MTError, match="best.pt: not a readable checkpoint"):
        load_checkpoint(path)


@pytest.mark.slow
def test_compiled_training_matches_eager(memorise_root, cache_dir, tmp_path):
    """trainer.compile=true changes speed, not results (minutes: inductor compiles C++)."""
    common = ["trainer.max_steps=4", "trainer.valid_every=4", "decode.beam_size=1"]
    for mode in ("false", "true"):
        config = make_config(memorise_root, "tiny", cache_dir, *common, f"trainer.compile={mode}")
        train(config, tmp_path / mode)
    eager = scalars(tmp_path / "false", "train/loss")
    compiled = scalars(tmp_path / "true", "train/loss")
    assert sorted(compiled) == [1, 2, 3, 4]
    for step, loss in eager.items():
        assert compiled[step] == pytest.approx(loss, rel=1e-4)


def test_batches_padded_by_a_worker_process_train_the_same(memorise_root, cache_dir, tmp_path):
    # The feed a GPU run uses (a DataLoader worker, pinned memory where there is CUDA),
    # forced on here: the same updates in the same order, so the same losses.
    common = ["trainer.max_steps=5", "trainer.valid_every=5", "trainer.accumulate=2"]
    common += ["decode.beam_size=1", "decode.max_len_b=2", "model.dropout=0.2"]
    for workers in (0, 1):
        overrides = [*common, f"data.loader_workers={workers}"]
        train(make_config(memorise_root, "tiny", cache_dir, *overrides), tmp_path / str(workers))
    here, worker = scalars(tmp_path / "0", "train/loss"), scalars(tmp_path / "1", "train/loss")
    assert sorted(worker) == [1, 2, 3, 4, 5]
    assert worker == pytest.approx(here, rel=1e-6)


THREADS_AFTER_A_LOADER_THREAD = """
import threading, torch
from mt.common.runtime import set_cpu_threads
set_cpu_threads(3)
# What the DataLoader's pin-memory thread does on a GPU run (it starts only with CUDA).
loader = threading.Thread(target=torch.set_num_threads, args=(1,))
loader.start(); loader.join()
print(torch.get_num_threads())
"""


def test_a_loader_thread_leaves_the_trainers_cpu_threads():
    # A fresh process: its main thread has not yet settled its count, as in mt.train.
    command = [sys.executable, "-c", THREADS_AFTER_A_LOADER_THREAD]
    run = subprocess.run(command, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["3"]


def test_the_reported_model_is_chosen_on_valid(memorise_root, cache_dir, tmp_path):
    """best.pt or the mean of the last snapshots, and the length penalty: the best valid
    BLEU of every candidate wins, and the final valid decode reproduces its score."""
    config = make_config(
        memorise_root,
        "tiny",
        cache_dir,
        "trainer.max_steps=100",
        "trainer.valid_every=50",
        "trainer.keep_last=2",
        "trainer.average_last=2",
        "trainer.length_penalties=[0.0,2.0]",
    )
    results = train(config, tmp_path)
    chosen = results["selection"]
    grid = chosen["valid_bleu"]
    assert set(grid) == {f"{c}, lp {p}" for c in ("best.pt", "averaged.pt") for p in (0.0, 2.0)}
    assert max(grid, key=grid.get) == f"{chosen['checkpoint']}, lp {chosen['length_penalty']}"
    assert results["valid"]["bleu"] == pytest.approx(max(grid.values()), abs=0.01)
    # averaged.pt is the mean of the two (different) snapshots, tensor by tensor.
    first, second = (
        load_checkpoint(tmp_path / "checkpoints" / f"step-{step}.pt")["model"] for step in (50, 100)
    )
    averaged = load_checkpoint(tmp_path / "checkpoints" / "averaged.pt")["model"]
    changed = [k for k in first if first[k].is_floating_point() and not first[k].equal(second[k])]
    assert changed
    for key in changed:
        torch.testing.assert_close(averaged[key], (first[key] + second[key]) / 2)


def test_held_out_pairs_longer_than_the_model_never_end_a_run(tmp_path, caplog):
    """A valid and test pair of 300 words each against a model of 64 positions: training
    drops such pairs, validation and test must take them as they come."""
    train_pairs = (multi30k_lines("train", "de", 30), multi30k_lines("train", "en", 30))
    long_pair = [" ".join(multi30k_lines("val", lang, 30)) for lang in ("de", "en")]
    held_out = tuple([long_pair[k], *train_pairs[k][:5]] for k in range(2))
    root = write_corpus(
        tmp_path, "long", {"train": train_pairs, "val": held_out, "test_2016_flickr": held_out}
    )
    overrides = ["model.max_positions=64", "data.max_len=64", "trainer.max_steps=2"]
    config = make_config(root, "long", tmp_path / "cache", *overrides, "trainer.valid_every=2")
    results = train(config, tmp_path / "run")
    assert results["steps"] == 2 and "bleu" in results["test"]
    assert "validation loss: 1 pairs longer than the model's 64 positions left out" in caplog.text
    assert "sources longer than the model's 64 positions: cut to fit" in caplog.text


def test_mt_installed_inside_another_repository_records_no_commit_of_that_repository(tmp_path):
    """A virtualenv inside a user's own project: git would walk up from site-packages and
    answer with the project's commit, which results.json would then call mt's."""
    project = tmp_path / "project"
    project.mkdir()
    git = ["git", "-c", "user.name=u", "-c", "user.email=u@example.com", "-C", str(project)]
    subprocess.run([*git, "init", "-q"], check=True)
    (project / "notes.txt").write_text("the user's own work\n")
    subprocess.run([*git, "add", "notes.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "theirs"], check=True)
    site = project / ".venv" / "lib" / "site-packages"
    install = ["install", "-q", "--no-deps", "--no-build-isolation", "--no-index"]
    command = [sys.executable, "-m", "pip", *install, "--target", str(site), str(REPO)]
    subprocess.run(command, check=True, capture_output=True)
    probe = "import mt.common.runtime as r; print(r.__file__); print(r.source_commit())"
    found = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert found == [str(site / "mt" / "common" / "runtime.py"), "None"]
    assert source_commit() is not None  # this checkout is mt's own


def test_the_first_log_lines_come_early_and_a_too_short_run_is_warned_about(
    memorise_root, cache_dir, tmp_path, caplog
):
    short = ["decode.beam_size=1", "decode.max_len_a=0", "decode.max_len_b=2"]
    settings = ["trainer.log_every=100", "trainer.max_steps=12", "trainer.warmup_steps=20"]
    settings += ["trainer.valid_every=100", "trainer.keep_last=2", "trainer.average_last=2"]
    with caplog.at_level(logging.INFO, logger="mt"):
        train(make_config(memorise_root, "tiny", cache_dir, *settings, *short), tmp_path)
    # Signs of life long before step 100: log lines and TensorBoard points at steps 1 and 10.
    assert sorted(scalars(tmp_path, "train/loss")) == [1, 10]
    lines = [r.getMessage() for r in caplog.records]
    assert [int(line.split()[1]) for line in lines if line.startswith("step ")] == [1, 10]
    warned = [line for line in lines if line.startswith("warning: trainer.")]
    assert len(warned) == 3
    assert "trainer.max_steps=12 < trainer.warmup_steps=20" in warned[0]
    assert "one validation, at the last step" in warned[1]
    assert "trainer.average_last=2, but trainer.max_steps=12 gives 1 validations" in warned[2]


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(26.7 * 3600, "1d 02:42:00"), (3 * 86400 + 61, "3d 00:01:01"), (59, "00:00:59")],
)
def test_the_time_left_shows_its_days(seconds, shown):
    assert duration(seconds) == shown
