"""Checkpoint averaging (Vaswani et al., 2017; Junczys-Dowmunt et al., 2016): the mean of a
run's last snapshots, usually a little BLEU for free. Used by mt.average and by the choice of
the reported model on valid (mt/training/selection.py)."""

from __future__ import annotations

from pathlib import Path

from mt.common.checkpoint import check_vocabulary, load_checkpoint, snapshots
from mt.common.errors import MTError


def collect(inputs: list[str], last: int | None) -> list[Path]:
    """Checkpoint files from files and run directories (their step-N.pt), oldest first."""
    paths: list[Path] = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            directory = path / "checkpoints" if (path / "checkpoints").is_dir() else path
            found = snapshots(directory)
            if not found:
                raise MTError(
                    f"{directory}: no step-N.pt checkpoints (train with trainer.keep_last)"
                )
            paths += found
        else:
            paths.append(path)
    return paths[-last:] if last else paths


def average(paths: list[Path]) -> dict:
    """The newest checkpoint's config and vocabulary with the mean of all their weights."""
    if not paths:
        raise MTError("no checkpoints to average")
    newest = load_checkpoint(paths[-1])
    sums = {k: v.double() if v.is_floating_point() else v for k, v in newest["model"].items()}
    for path in paths[:-1]:
        payload = load_checkpoint(path)
        check_vocabulary(payload, newest["tokenizer"], path)
        weights = payload["model"]
        if weights.keys() != sums.keys() or any(weights[k].shape != sums[k].shape for k in sums):
            raise MTError(f"{path}: weights of another model than {paths[-1]}")
        for k, v in weights.items():
            if v.is_floating_point():
                sums[k] += v.double()
    model = {
        k: (v / len(paths)).to(newest["model"][k].dtype) if v.is_floating_point() else v
        for k, v in sums.items()
    }
    return {
        "config": newest["config"],
        "tokenizer": newest["tokenizer"],
        "languages": newest.get("languages"),
        "model": model,
        "progress": newest["progress"],
        "averaged_from": [str(p) for p in paths],
    }
