"""Self-contained checkpoints: atomic saves, weights_only loads, compatibility checks.

A checkpoint holds the config, the sentencepiece models and the weights, so it can be used
alone; for resuming it also holds the optimizer, scheduler, RNG states and data position.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from mt.common.errors import MTError
from mt.common.files import os_error, replaced_on_success

FORMAT = "mt-checkpoint-1"


def save_checkpoint(payload: dict, path: Path) -> None:
    """Write to a temporary file, flush it to disk, then rename over path.

    A crash at any point leaves either the old checkpoint or the new one, never half of one.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with replaced_on_success(path) as tmp, open(tmp, "wb") as f:
            torch.save({"format": FORMAT, **payload}, f)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise os_error(path, e, "the checkpoint") from None
    except RuntimeError as e:  # torch's zip writer reports a failed write (a full disk) so
        raise os_error(path, OSError(str(e).splitlines()[0]), "the checkpoint") from None


def load_checkpoint(path: Path | str) -> dict:
    """Load a checkpoint on the CPU with weights_only=True (no arbitrary code runs)."""
    path = Path(path)
    if not path.is_file():
        raise MTError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, corrupt, or not a torch file at all
        raise MTError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise MTError(f"{path}: not an mt checkpoint (expected format {FORMAT})")
    return payload


def check_vocabulary(payload: dict, tokenizer_models: dict[str, bytes], path: Path | str) -> None:
    """Refuse weights trained with another subword vocabulary than the one in use."""
    if payload["tokenizer"] != tokenizer_models:
        raise MTError(
            f"{path}: the checkpoint was trained with another vocabulary than this run's data "
            f"settings produce (data, data.vocab_size, data.subword_type or data.joint_vocab "
            f"differ)"
        )


def load_weights(model: torch.nn.Module, weights: dict, path: Path | str) -> None:
    """load_state_dict with one clear error when the weights belong to another model shape."""
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if "\n" in str(e) else str(e)
        raise MTError(f"{path}: weights do not fit the configured model ({first})") from None


def snapshots(directory: Path) -> list[Path]:
    """The step-N.pt checkpoints of a run's checkpoint directory, oldest first."""
    return sorted(directory.glob("step-*.pt"), key=lambda p: int(p.stem.removeprefix("step-")))


def keep_snapshot(directory: Path, step: int, keep: int) -> None:
    """Keep last.pt as step-<step>.pt too and delete all but the `keep` newest snapshots."""
    snapshot = directory / f"step-{step}.pt"
    snapshot.unlink(missing_ok=True)
    try:  # a hard link costs no space or time; last.pt is later replaced, not rewritten
        os.link(directory / "last.pt", snapshot)
    except OSError:  # file systems without hard links
        shutil.copyfile(directory / "last.pt", snapshot)
    for old in snapshots(directory)[:-keep]:
        old.unlink()
