"""Training a study's runs: each missing run by `mt.train` in a subprocess (a run whose
inputs are unfinished waits for them; --jobs at once, logs beside the runs), and each
distilled corpus by `mt.distill`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from mt.common.errors import MTError
from mt.common.progress import bar
from mt.studies.grid import Run, check_same_settings
from mt.studies.spec import Distilled
from mt.training.rundir import lock_holder


def train_command(run: Run, data_root: str | None, threads: int) -> list[str] | None:
    """The mt.train command that finishes the run, or None when it has finished."""
    if (run.directory / "results.json").is_file():
        return None
    command = [sys.executable, "-m", "mt.train", *run.overrides]
    command += [f"trainer.num_threads={threads}", f"hydra.run.dir={run.directory}"]
    if data_root:
        command.append(f"data.root={data_root}")
    if (run.directory / "checkpoints" / "last.pt").is_file():
        # A child run resumes from its own last.pt, which names its parent; its config.yaml
        # keeps the init_from it started with.
        command = [o for o in command if not o.startswith("trainer.init_from=")]
        command.append("trainer.resume=true")
    return command


def train_all(runs: list[Run], data_root: str | None, threads: int, jobs: int = 1) -> None:
    """Train what is missing and resume what stopped, up to `jobs` runs at a time (a GPU that
    small models leave idle trains several at once). A run started from another run's
    directory waits for it, one that another process is training (a study beside this one)
    waits for that, and a pivot row's runs train nothing."""
    pending = [run for run in runs if not run.row.pivot]
    for run in pending:  # other settings are refused before anything trains
        check_same_settings(run)
    running: dict[Path, subprocess.Popen] = {}
    failed: list[Path] = []
    by_directory = {run.directory: run for run in pending}
    # With one job the run's own output (its bar, its log) is on the terminal: no bar above.
    runs_shown = bar(total=len(pending), what="study runs", unit="run", show=jobs > 1)
    while running or (pending and not failed):
        finished = sum((directory / "results.json").is_file() for directory in by_directory)
        runs_shown.update(finished - runs_shown.n)
        unfinished = [run.directory for run in pending] + list(running)
        ready = [r for r in pending if not (waits_for(r, unfinished) or trained_elsewhere(r))]
        if not (ready or running or any(trained_elsewhere(r) for r in pending)):
            raise MTError(f"{pending[0].directory}: waits for a run that never finishes")
        for run in ready:
            command = train_command(run, data_root, threads)
            if command is None:
                print(f"{run.directory}: finished, kept", flush=True)
            elif failed or len(running) == jobs:
                continue
            else:
                print(" ".join(command), flush=True)
                running[run.directory] = start_training(run, command, jobs)
            pending.remove(run)
        for directory in ended_with_failure(running, waiting=bool(pending)):
            run = by_directory[directory]
            if trained_elsewhere(run) or (directory / "results.json").is_file():
                # A study beside this one started it at the same moment and holds its lock.
                print(f"{directory}: another process is training it; waiting", flush=True)
                pending.append(run)
            else:
                failed.append(directory)
    runs_shown.close()
    if failed:
        names = ", ".join(str(directory) for directory in failed)
        raise MTError(f"{names}: training failed; rerun the study to resume it")


def waits_for(run: Run, unfinished: list[Path]) -> bool:
    """Whether one of the run's overrides names another run's directory that is unfinished
    (trainer.init_from={runs}/parent-seed1)."""
    others = [str(d.resolve()) for d in unfinished if d != run.directory]
    # The whole directory name: a-seed1 is not a-seed10.
    named = [re.compile(re.escape(other) + r"(?![^/,\]}'\" ])") for other in others]
    return any(name.search(override) for name in named for override in run.overrides)


def trained_elsewhere(run: Run) -> bool:
    """Whether another live process is training the run (an unfinished run's lock)."""
    finished = (run.directory / "results.json").is_file()
    return not finished and lock_holder(run.directory) is not None


def start_training(run: Run, command: list[str], jobs: int) -> subprocess.Popen:
    """mt.train in its own process; beside others, its output goes to <runs>/<run>.log."""
    if jobs == 1:
        return subprocess.Popen(command)
    run.directory.parent.mkdir(parents=True, exist_ok=True)
    with open(run.directory.with_name(f"{run.directory.name}.log"), "ab") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


def ended_with_failure(running: dict[Path, subprocess.Popen], waiting: bool) -> list[Path]:
    """The runs that ended, dropped from running, and of them those that failed; a second's
    pause first when none has ended and runs are running or waiting."""
    ended = [d for d, process in running.items() if process.poll() is not None]
    if not ended and (running or waiting):
        time.sleep(1)
    return [d for d in ended if running.pop(d).returncode != 0]


def distill_corpus(
    corpus: Distilled, teachers: list[Run], runs: Path, data_root: str | None, threads: int
) -> None:
    """The distilled corpus by mt.distill (resumable; a finished one is kept as it is), in
    the study's CPU threads, as its trainings."""
    finals = ",".join(str(run.final.resolve()) for run in teachers)  # as any other call named them
    command = [sys.executable, "-m", "mt.distill", f"checkpoint=[{finals}]"]
    command += [f"out={runs.resolve() / 'distilled' / corpus.name}", *corpus.overrides]
    if data_root:
        command.append(f"data_root={data_root}")
    print(" ".join(command), flush=True)
    threads_only = {**os.environ, "OMP_NUM_THREADS": str(threads)}  # torch's default
    if subprocess.run(command, env=threads_only).returncode != 0:
        raise MTError(f"distilled {corpus.name}: mt.distill failed; rerun the study to resume it")
