"""torchrun with two CPU processes (Gloo): sharding, gradient averaging, one writer, failure,
resume. Each test launches real processes through torch.distributed.run."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import REPO, TINY, losses, make_config

from mt.data.batches import make_batch, train_batches
from mt.training.trainer import Trainer, train

TESTS = Path(__file__).parent


def torchrun(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    return subprocess.run(
        [*command, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def ddp_train(root: Path, run_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    return torchrun(
        "-m",
        "mt.train",
        "+experiment=transformer",
        *TINY,
        f"data.root={root}",
        "data.name=tiny",
        f"data.cache_dir={run_dir.parent / 'cache'}",
        "data.max_tokens=128",
        "decode.beam_size=1",
        "decode.max_len_a=0",
        "decode.max_len_b=3",
        f"hydra.run.dir={run_dir}",
        *overrides,
        cwd=REPO,
    )


def test_one_ddp_step_equals_one_step_on_the_union_of_both_shares(
    memorise_root, cache_dir, tmp_path
):
    result = torchrun(
        str(TESTS / "ddp_worker.py"),
        "step",
        str(memorise_root),
        str(cache_dir),
        str(tmp_path),
        cwd=TESTS,
    )
    assert result.returncode == 0, result.stderr
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    # The reference: one process, one update over both ranks' first batches.
    config = make_config(memorise_root, "tiny", cache_dir, "data.max_tokens=128")
    single = Trainer(config, tmp_path / "single")
    train = single.corpus.train
    batches = train_batches(train, 128, config.data.max_len, config.trainer.seed, 0)
    assert len(batches) >= 2
    single.train_step([make_batch(train, batches[0]), make_batch(train, batches[1])])
    before = Trainer(config, tmp_path / "untrained").model.state_dict()
    for name, weights in single.model.state_dict().items():
        torch.testing.assert_close(rank0[name], rank1[name], rtol=0, atol=0)
        torch.testing.assert_close(rank0[name], weights, rtol=1e-5, atol=1e-6)
    assert any(not torch.equal(before[n], w) for n, w in rank0.items())  # it did train
    # Gloo's threads stop when the group is left, not in interpreter teardown, which can abort.
    for rank in (0, 1):
        threads = (tmp_path / f"rank{rank}.threads").read_text().split()
        assert not [name for name in threads if "gloo" in name], threads


def test_a_failing_rank_ends_the_whole_job(memorise_root, cache_dir, tmp_path):
    start = time.monotonic()
    result = torchrun(
        str(TESTS / "ddp_worker.py"),
        "fail",
        str(memorise_root),
        str(cache_dir),
        str(tmp_path),
        cwd=TESTS,
        timeout=240,
    )
    assert result.returncode != 0
    assert "rank 1 fails on purpose" in result.stderr
    assert time.monotonic() - start < 240
    assert not (tmp_path / "rank0.pt").exists()


def test_ddp_run_writes_one_set_of_outputs_and_resumes_exactly(memorise_root, tmp_path):
    # Dropout on: every rank's random state must come back on resume.
    straight = tmp_path / "straight"
    result = ddp_train(
        memorise_root, straight, "trainer.max_steps=4", "trainer.valid_every=2", "model.dropout=0.3"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("test BLEU") == 1  # rank 0 alone tests and reports
    assert len(list((straight / "tb").glob("events.out.tfevents.*"))) == 1
    written = sorted(p.name for p in (straight / "checkpoints").iterdir())
    assert written == ["best.pt", "final.pt", "last.pt"]
    assert (straight / "train.log").read_text().count("valid step") == 2

    interrupted = tmp_path / "interrupted"
    first = ddp_train(
        memorise_root,
        interrupted,
        "trainer.max_steps=2",
        "trainer.valid_every=2",
        "model.dropout=0.3",
    )
    assert first.returncode == 0, first.stderr
    resumed = ddp_train(
        memorise_root,
        interrupted,
        "trainer.max_steps=4",
        "trainer.valid_every=2",
        "trainer.resume=true",
        "model.dropout=0.3",
    )
    assert resumed.returncode == 0, resumed.stderr
    expected, got = losses(straight), losses(interrupted)
    assert sorted(got) == [1, 2, 3, 4]
    for step in (3, 4):
        assert got[step] == pytest.approx(expected[step], rel=1e-6)

    # The DDP checkpoint continues in a single process, and that one under DDP again.
    config = make_config(
        memorise_root,
        "tiny",
        tmp_path / "cache",
        "data.max_tokens=128",
        "trainer.max_steps=5",
        "trainer.valid_every=5",
        "trainer.resume=true",
        "decode.beam_size=1",
        "decode.max_len_b=3",
    )
    assert train(config, interrupted)["steps"] == 5
    again = ddp_train(
        memorise_root,
        interrupted,
        "trainer.max_steps=6",
        "trainer.valid_every=6",
        "trainer.resume=true",
    )
    assert again.returncode == 0, again.stderr
    assert sorted(losses(interrupted)) == [1, 2, 3, 4, 5, 6]
