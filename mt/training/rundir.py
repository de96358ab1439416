"""A run directory belongs to one run: a trained run is not overwritten unless the user says
so, and two live runs never share a directory.

Checked by a Hydra callback (configs/config.yaml, hydra.callbacks) when the run starts,
before Hydra writes anything there (.hydra/, train.log), so a refused run changes nothing.
"""

from __future__ import annotations

import atexit
import os
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from mt.common.errors import MTError, reported
from mt.common.files import process_alive, this_process

LOCK = ".lock"  # holds "PID@HOST" of the run training in the directory


def refuse_trained_run(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """A directory with checkpoints is continued (resume) or replaced (overwrite), never
    silently retrained from scratch."""
    found = sorted((run_dir / "checkpoints").glob("*.pt"))
    if found and not (resume or overwrite):
        raise MTError(
            f"{run_dir} holds a trained run ({found[0].name}): continue it with "
            f"trainer.resume=true, replace it with trainer.overwrite=true, or choose another "
            f"hydra.run.dir"
        )


def refuse_parents_directory(run_dir: Path, init_from: str | None) -> None:
    """A child run (trainer.init_from) never writes where its parent is, whatever
    trainer.overwrite says: its checkpoints would replace the parent's."""
    if not init_from:
        return
    parent = Path(init_from).resolve()
    owner = parent if parent.is_dir() else parent.parent  # a checkpoint's folder
    if owner.name == "checkpoints":  # a run's checkpoints: the run directory is above
        owner = owner.parent
    if run_dir.resolve() == owner:
        raise MTError(
            f"hydra.run.dir={run_dir} holds the parent trainer.init_from={init_from}: a child "
            "run never writes into its parent's directory; choose another hydra.run.dir"
        )


def lock_holder(run_dir: Path) -> str | None:
    """The live process ("PID@HOST") training in run_dir, if any."""
    try:
        holder = (run_dir / LOCK).read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return holder if process_alive(holder) else None


def acquire_lock(run_dir: Path) -> Path:
    """Create run_dir/.lock for this process; refuse while a live process holds it, take it
    over from a dead one (a killed run)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = run_dir / LOCK
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                holder = lock.read_text().strip()
            except FileNotFoundError:  # released meanwhile: try again
                continue
            if process_alive(holder):
                raise MTError(
                    f"{run_dir}: another run is training here ({holder}); wait for it to "
                    f"finish or choose another hydra.run.dir"
                ) from None
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(this_process() + "\n")
        atexit.register(lock.unlink, missing_ok=True)  # at any exit but a kill
        return lock


class RunDirGuard(Callback):
    """Hydra callback: refuse a trained or busy run directory before the run writes to it."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 guards for all
            return
        run_dir = Path(config.hydra.run.dir)
        with reported():
            refuse_parents_directory(run_dir, config.trainer.init_from)
            refuse_trained_run(run_dir, config.trainer.resume, config.trainer.overwrite)
            acquire_lock(run_dir)
