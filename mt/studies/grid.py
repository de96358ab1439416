"""A study's runs: each row trained once per seed by `mt.train` in <runs>/<row>-seed<k>, a
finished run kept, an unfinished one resumed, and a run trained with other settings refused
rather than reused."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from mt.common.errors import MTError
from mt.common.files import write_text
from mt.config.schema import Config
from mt.config.store import config_dir, register_configs
from mt.studies.spec import Distilled, Study, StudyRow, row_overrides, row_seeds
from mt.training.rundir import lock_holder
from mt.training.state import flat

# Settings of where and how a run trains, not of what it learns: a run keeps its place in a
# study when they differ (another data root, thread count, a resume).
LOCAL_KEYS = ("data.root", "data.cache_dir", "trainer.num_threads", "trainer.resume")


RESULTS_KEYS = ("config", "valid", "test")  # what every results.json has, pivots' too


@dataclass
class Run:
    row: StudyRow
    seed: int
    directory: Path
    overrides: list[str]
    direction: str | None = None  # the multilingual model's direction this view compares

    @cached_property
    def results(self) -> dict:
        """The finished run's results.json, read once (a report reads it many times)."""
        path = self.directory / "results.json"
        try:
            found = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise MTError(f"{path}: not JSON ({e})") from None
        missing = [k for k in RESULTS_KEYS if not isinstance(found, dict) or k not in found]
        if missing:
            raise MTError(f"{path}: not an mt results file (no {', '.join(missing)})")
        return found

    @property
    def test(self) -> dict:
        """The test scores this row compares: a multilingual run's of the row's direction."""
        return self.scores("test")

    @property
    def valid(self) -> dict:
        return self.scores("valid")

    def scores(self, split: str) -> dict:
        found = self.results[split]
        if not self.direction:
            return found
        # Valid has no zero-shot directions (nor, before 2026-12-04, any per direction).
        if split == "valid" and self.direction not in found.get("directions", {}):
            return dict.fromkeys(("bleu", "chrf"))
        if self.direction not in found["directions"]:
            have = list(found["directions"])
            raise MTError(f"{self.directory}: no direction {self.direction}; it has {have}")
        return found["directions"][self.direction]

    @property
    def compared(self) -> str:
        """The direction whose test set this run is scored on, e.g. de-en."""
        if self.direction:
            return self.direction
        data = self.results["config"]["data"]
        if data.get("directions"):
            raise MTError(
                f"rows: {self.row.name}: {self.directory} is multilingual; give the row the "
                f"directions it compares (of {data['directions']} and their zero-shot ones)"
            )
        return f"{data['src_lang']}-{data['tgt_lang']}"

    @property
    def final(self) -> Path:
        return self.directory / self.results["final"]


def study_runs(study: Study, runs: Path) -> list[Run]:
    """Every run of the study, seed by seed (each seed's rows first, so a partial study
    already compares every row)."""
    seeds = sorted({seed for row in study.rows for seed in row_seeds(study, row)})
    return [
        Run(row, seed, runs / f"{row.name}-seed{seed}", row_overrides(study, row, seed, runs))
        for seed in seeds
        for row in study.rows
        if seed in row_seeds(study, row)
    ]


def views(run: Run) -> list[Run]:
    """The run once per direction its row compares (a multilingual row's), else as it is."""
    return [replace(run, direction=d) for d in run.row.directions] or [run]


def composed(overrides: list[str], defaults: bool = False) -> dict:
    """The resolved training config these overrides give, as mt.train would compose it (with
    defaults: the schemas' defaults for the architecture they choose, every value unset)."""
    register_configs()
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        config = compose("config", overrides=overrides)
        if defaults:
            model = OmegaConf.to_object(config.model)
            config = OmegaConf.structured(Config(model=type(model)()))
        return OmegaConf.to_container(config, resolve=True, enum_to_str=True)


def check_same_settings(run: Run) -> None:
    """Refuse a run directory trained with settings other than the study's for it; a setting
    its config.yaml lacks (one added since it trained) counts as the schema's default."""
    saved = run.directory / "config.yaml"
    if not saved.is_file():
        return
    try:
        have = flat(OmegaConf.to_container(OmegaConf.load(saved), resolve=True))
    except (UnicodeDecodeError, ValueError, yaml.YAMLError) as e:
        raise MTError(f"{saved}: not a run's config ({type(e).__name__})") from None
    want = flat(composed(run.overrides))
    default = flat(composed(run.overrides, defaults=True))
    have = {**{k: default[k] for k in want.keys() - have.keys() if k in default}, **have}
    root = str(run.directory.parent.resolve())
    trained_in = trained_root(run)
    for key in sorted(set(have) | set(want)):
        if key in LOCAL_KEYS:
            continue
        if not same_setting(have.get(key), want.get(key), root, trained_in):
            raise MTError(
                f"{run.directory}: trained with {key}={have.get(key)}, the study asks "
                f"{want.get(key)}; give the row another name or the study another --runs"
            )


def trained_root(run: Run) -> str | None:
    """The runs' directory the run trained in, as its results.json records it (None for an
    unfinished run, or one finished before 2026-12-07)."""
    if not (run.directory / "results.json").is_file():
        return None
    directory = run.results.get("directory")
    return str(Path(directory).parent) if directory else None


def same_setting(have: object, want: object, root: str, trained_in: str | None = None) -> bool:
    """Equal, or paths to the same place in the runs' directory wherever it was when the run
    trained (trainer.init_from={runs}/parent-seed1 of runs moved, or kept without weights),
    also inside lists and mappings (data.train_sources' roots). Where the run recorded that
    directory (trained_in), a path must be exactly that place in it; an older run's must end
    as the study's does."""
    if isinstance(have, dict) and isinstance(want, dict):
        return have.keys() == want.keys() and all(
            same_setting(have[k], want[k], root, trained_in) for k in want
        )
    if isinstance(have, list) and isinstance(want, list):
        pairs = zip(have, want, strict=False)
        same = all(same_setting(h, w, root, trained_in) for h, w in pairs)
        return len(have) == len(want) and same
    if have == want:
        return True
    if not (isinstance(want, str) and want.startswith(root + os.sep) and isinstance(have, str)):
        return False
    inside = want[len(root) :]
    return have == trained_in + inside if trained_in else have.endswith(inside)


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
    while running or (pending and not failed):
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


def distill(
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


# What a run's report needs, without its checkpoints: a few hundred KB for a whole study.
KEPT_FILES = ("config.yaml", "results.json")


def long_inputs_file(run: Run) -> str:
    """The run's long-input scores, per compared direction of a multilingual run."""
    return f"long_inputs.{run.direction}.json" if run.direction else "long_inputs.json"


def keep_outputs(runs: list[Run], study_files: list[Path], outputs: Path) -> None:
    """Copy each run's config, results and test output, and the study's own result files
    (ensembles), into outputs/, where the study finds every run finished: its report can be
    recomputed from there without the checkpoints."""
    for run in runs:
        suffix = run.direction or run.results["config"]["data"]["tgt_lang"]
        for name in (*KEPT_FILES, long_inputs_file(run), f"test.hyp.{suffix}"):
            copy_text(run.directory / name, outputs / run.directory.name / name)
    for path in study_files:
        copy_text(path, outputs / path.name)


def copy_text(source: Path, target: Path) -> None:
    if source.is_file():
        write_text(target, source.read_text(encoding="utf-8"))
