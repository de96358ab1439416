"""Faults a long training meets: a stop signal, a full disk, a frozen rank. Real processes,
real signals, real file systems."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import TINY, losses, make_config, multi30k_lines

from mt.common.checkpoint import load_checkpoint
from mt.data.corpus import load_corpus

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


def train_command(
    root: Path, run_dir: Path, *overrides: str, cache: Path | None = None
) -> list[str]:
    return [
        "-m",
        "mt.train",
        "+experiment=transformer",
        *TINY,
        f"data.root={root}",
        "data.name=tiny",
        f"data.cache_dir={cache or run_dir.parent / 'cache'}",
        "data.max_tokens=256",
        "decode.beam_size=1",
        "decode.max_len_a=0",
        "decode.max_len_b=3",
        f"hydra.run.dir={run_dir}",
        *overrides,
    ]


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
    # How to continue, in the run's log too, once: not only on a terminal long closed.
    logged = (run_dir / "train.log").read_text(encoding="utf-8")
    assert logged.count(f"stopped by SIGTERM at step {step};") == 1

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
    finally:
        # torchrun would wait its own fixed 30 s for the frozen worker before killing it;
        # that is torchrun's part, so the test kills it at once.
        if Path(f"/proc/{frozen}").exists():
            os.kill(frozen, signal.SIGKILL)
    status, output = running.finish(timeout=120)
    assert status != 0
    assert f"trainer.ddp_timeout_s={timeout}" in output


def in_private_mounts(script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """Run a bash script in a mount namespace of its own, where it may mount a small tmpfs
    that no one else sees and that vanishes with it."""
    command = ["unshare", "--mount", "--map-root-user"]
    try:
        usable = subprocess.run([*command, "true"], capture_output=True).returncode == 0
    except FileNotFoundError:
        usable = False
    if not usable:
        pytest.skip("cannot mount a tmpfs here (unshare --mount --map-root-user fails)")
    return subprocess.run(
        [*command, "bash", "-c", script],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )


FILL = "import os, sys; s = os.statvfs(sys.argv[1]); open(sys.argv[1] + '/' + sys.argv[3], 'wb')"
FILL += ".write(bytes(s.f_bavail * s.f_frsize - int(sys.argv[2])))"  # leave argv[2] bytes free

LIST = "import os, sys; print(sys.argv[1], sorted(os.listdir(sys.argv[2])))"
STEP = "import sys, torch; payload = torch.load(sys.argv[1], weights_only=True); "
STEP += "print('kept', payload['progress']['step'])"


def test_a_full_disk_gives_one_line_and_keeps_the_checkpoint_and_cache(
    memorised_run, memorise_root, cache_dir, tmp_path
):
    run_dir, _ = memorised_run
    fs = tmp_path / "fs"
    fs.mkdir()
    resume = train_command(
        memorise_root,
        fs / "run",
        "trainer.resume=true",
        "trainer.max_steps=160",
        "trainer.save_every=1",
        cache=cache_dir,
    )
    # Only the cache on the full disk: Hydra's own files go elsewhere.
    fresh = train_command(memorise_root, tmp_path / "fresh", "trainer.max_steps=1", cache=fs / "c")
    script = f"""
    set -e
    mount -t tmpfs -o size=32m tmpfs {fs}
    cp -r {run_dir} {fs}/run
    python -c "$FILL" {fs} 400000 filler1
    set +e
    python {" ".join(resume)}
    echo "exit $?"
    python -c "$STEP" {fs}/run/checkpoints/last.pt
    python -c "$LIST" checkpoints {fs}/run/checkpoints
    python -c "$FILL" {fs} 20000 filler2
    python {" ".join(fresh)}
    echo "exit $?"
    python -c "$LIST" cache {fs}/c
    """
    result = in_private_mounts(script, tmp_path, FILL=FILL, LIST=LIST, STEP=STEP)
    out, err = result.stdout, result.stderr
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 2, err
    expected = f"error: {fs}/run/checkpoints/last.pt: could not write the checkpoint ("
    assert errors[0].startswith(expected), errors[0]
    assert errors[1].startswith(f"error: {fs}/c/de-en-"), errors[1]
    # The system's reason, or datasets' own check of the free space before it writes.
    reasons = ("(No space left on device", "(Not enough disk space")
    assert any(f"could not write the data cache {r}" in errors[1] for r in reasons), errors[1]
    assert out.count("exit 1") == 2, out
    assert "kept 150" in out  # the checkpoint from before the full disk, whole
    # No temporary files are left behind, and the earlier checkpoints are all there.
    kept = ["best.pt", "final.pt", "last.pt", "step-100.pt", "step-150.pt"]
    assert f"checkpoints {kept}" in out, out
    # No half-built cache: only the file digests, written (whole) before the build.
    assert "cache ['file-digests.json']" in out, out


def test_temporary_caches_of_killed_builders_are_removed(memorise_root, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    host = socket.gethostname()
    killed = cache / f".tmp-{gone.pid}@{host}~de-en-0123456789abcdef"
    busy = cache / f".tmp-{os.getpid()}@{host}~de-en-fedcba9876543210"  # a live builder's
    for directory in (killed, busy):
        (directory / "train").mkdir(parents=True)
    load_corpus(make_config(memorise_root, "tiny", cache).data)
    assert not killed.exists()
    assert (busy / "train").is_dir()
    assert len([p for p in cache.iterdir() if p.is_dir() and not p.name.startswith(".tmp-")]) == 1


def test_a_full_disk_during_translate_names_the_output_and_keeps_the_earlier_one(
    moved_checkpoint, tmp_path
):
    fs = tmp_path / "fs"
    fs.mkdir()
    source = tmp_path / "in.de"
    source.write_text("".join(s + "\n" for s in multi30k_lines("train", "de", 30)))
    translate = [sys.executable, "-m", "mt.translate", f"checkpoint={moved_checkpoint}"]
    translate += [f"input={source}", f"output={fs}/out.en"]
    script = f"""
    set -e
    mount -t tmpfs -o size=1m tmpfs {fs}
    echo earlier > {fs}/out.en
    python -c "$FILL" {fs} 0 filler
    set +e
    {" ".join(translate)}
    echo "exit $?"
    cat {fs}/out.en
    python -c "$LIST" left {fs}
    """
    result = in_private_mounts(script, tmp_path, FILL=FILL, LIST=LIST)
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {fs}/out.en: could not write"), errors
    assert "exit 1" in result.stdout and "earlier" in result.stdout
    assert "left ['filler', 'out.en']" in result.stdout  # no temporary left behind


def test_a_full_disk_during_export_names_the_output_and_leaves_nothing(moved_checkpoint, tmp_path):
    fs = tmp_path / "fs"
    fs.mkdir()
    export = [sys.executable, "-m", "mt.export", f"checkpoint={moved_checkpoint}", f"out={fs}/ct2"]
    script = f"""
    set -e
    mount -t tmpfs -o size=1m tmpfs {fs}
    python -c "$FILL" {fs} 50000 filler
    set +e
    {" ".join(export)}
    echo "exit $?"
    python -c "$LIST" left {fs}
    """
    result = in_private_mounts(script, tmp_path, FILL=FILL, LIST=LIST)
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [errors[0]] and errors[0].startswith(
        f"error: {fs}/ct2: could not write the export ("
    ), errors
    assert "exit 1" in result.stdout
    assert "left ['filler']" in result.stdout  # no staging directory left behind
