"""Faults a long training meets: a stop signal, a full disk, a frozen rank. Real processes,
real signals, real file systems."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import TINY
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mt.checkpoint import load_checkpoint

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


class Running:
    """A started command whose merged output is read as it comes."""

    def __init__(self, command: list[str], cwd: Path):
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.queue: queue.Queue = queue.Queue()
        threading.Thread(target=self.read, daemon=True).start()

    def read(self) -> None:
        for line in self.process.stdout:
            self.queue.put(line)
        self.queue.put(None)

    def wait_for(self, pattern: str, timeout: float = 120) -> re.Match:
        """The first new output line matching pattern."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            line = self.queue.get(timeout=left)
            if line is None:
                break
            self.lines.append(line)
            if match := re.search(pattern, line):
                return match
        raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(self.lines)}")

    def finish(self, timeout: float = 120) -> tuple[int, str]:
        """Exit status and the whole output."""
        status = self.process.wait(timeout=timeout)
        while (line := self.queue.get(timeout=10)) is not None:
            self.lines.append(line)
        return status, "".join(self.lines)


def train_command(root: Path, run_dir: Path, *overrides: str) -> list[str]:
    return [
        "-m",
        "mt.train",
        "+experiment=transformer",
        *TINY,
        f"data.root={root}",
        "data.name=tiny",
        f"data.cache_dir={run_dir.parent / 'cache'}",
        "data.max_tokens=256",
        "decode.beam_size=1",
        "decode.max_len_a=0",
        "decode.max_len_b=3",
        f"hydra.run.dir={run_dir}",
        *overrides,
    ]


def losses(run_dir: Path) -> dict[int, float]:
    events = EventAccumulator(str(run_dir / "tb")).Reload()
    return {e.step: e.value for e in events.Scalars("train/loss")}


def test_sigterm_saves_last_pt_and_a_resume_continues_exactly(memorise_root, tmp_path):
    # Dropout on, no validation before the signal: only last.pt written on the way out can
    # carry the position, the weights, the optimizer and the random state.
    common = ["model.dropout=0.3", "trainer.max_steps=60", "trainer.valid_every=60"]
    straight = tmp_path / "straight"
    done = subprocess.run(
        [sys.executable, *train_command(memorise_root, straight, *common)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr

    run_dir = tmp_path / "stopped"
    command = [sys.executable, *train_command(memorise_root, run_dir, *common)]
    running = Running(command, cwd=tmp_path)
    running.wait_for(r"step +5 \|")
    running.process.send_signal(signal.SIGTERM)
    status, output = running.finish()
    assert status == 128 + signal.SIGTERM, output
    stopped = re.search(r"stopped: stopped by SIGTERM at step (\d+);.* trainer.resume=true", output)
    assert stopped, output
    step = int(stopped.group(1))
    assert 5 <= step < 60
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["progress"]["step"] == step
    assert not (run_dir / "results.json").exists()  # stopped, not finished: no test decoding

    resumed = subprocess.run(
        [*command, "trainer.resume=true"], cwd=tmp_path, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    expected, got = losses(straight), losses(run_dir)
    assert sorted(got) == list(range(1, 61))
    for s in range(step + 1, 61):
        assert got[s] == pytest.approx(expected[s], rel=1e-6), s


def test_save_every_leaves_a_recent_last_pt_after_a_kill(memorise_root, tmp_path):
    run_dir = tmp_path / "run"
    overrides = ["trainer.max_steps=1000", "trainer.valid_every=1000", "trainer.save_every=3"]
    running = Running(
        [sys.executable, *train_command(memorise_root, run_dir, *overrides)], tmp_path
    )
    running.wait_for(r"step +8 \|")
    running.process.kill()  # no handler runs: only what save_every wrote is there
    running.finish()
    step = load_checkpoint(run_dir / "checkpoints" / "last.pt")["progress"]["step"]
    assert step >= 6 and step % 3 == 0
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["last.pt"]


def worker_pid(launcher: int, rank: int) -> int:
    """The process id of the torchrun worker with the given RANK."""
    for task in Path(f"/proc/{launcher}/task").iterdir():
        for child in (task / "children").read_text().split():
            environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
            if f"RANK={rank}".encode() in environ:
                return int(child)
    raise AssertionError(f"torchrun {launcher} has no worker of rank {rank}")


def test_a_frozen_rank_ends_the_job_within_the_timeout(memorise_root, tmp_path):
    timeout = 10
    overrides = [
        "trainer.max_steps=100000",
        "trainer.valid_every=100000",
        f"trainer.ddp_timeout_s={timeout}",
    ]
    command = [*TORCHRUN, *train_command(memorise_root, tmp_path / "run", *overrides)]
    running = Running(command, tmp_path)
    running.wait_for(r"step +5 \|")
    frozen = worker_pid(running.process.pid, 1)
    os.kill(frozen, signal.SIGSTOP)
    start = time.monotonic()
    try:
        running.wait_for(r"error: rank 0: rank 1 stopped answering", timeout=120)
        # The timeout and the ranks' roll call (5 s), with some slack for a busy machine.
        assert time.monotonic() - start < timeout + 5 + 10
        status, output = running.finish(timeout=120)
    finally:
        if Path(f"/proc/{frozen}").exists():
            os.kill(frozen, signal.SIGKILL)
    assert status != 0
    assert f"trainer.ddp_timeout_s={timeout}" in output
    # torchrun then waits its fixed 30 s for the frozen worker before killing it.
    assert time.monotonic() - start < timeout + 5 + 30 + 10
