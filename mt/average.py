"""`python -m mt.average RUN_DIR --last N -o averaged.pt`: average checkpoints' weights.

Averaging the last few checkpoints of a run (Vaswani et al., 2017; Junczys-Dowmunt et al.,
2016) usually gains a little BLEU for free. Train with `trainer.keep_last=N` to keep them;
the inputs may also be checkpoint files named one by one. The result is a checkpoint like
any other for mt.evaluate and mt.translate (it has no optimizer state, so it does not resume).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mt.checkpoint import check_vocabulary, load_checkpoint, save_checkpoint, snapshots
from mt.errors import MTError, reported
from mt.files import same_file


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
        "model": model,
        "progress": newest["progress"],
        "averaged_from": [str(p) for p in paths],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m mt.average", description=__doc__.split("\n")[0]
    )
    parser.add_argument("inputs", nargs="+", help="checkpoint files or run directories")
    parser.add_argument("--last", type=int, help="average only the N newest")
    parser.add_argument("-o", "--output", required=True, help="where to write the average")
    args = parser.parse_args(argv)
    with reported():
        if args.last is not None and args.last < 1:
            raise MTError(f"--last {args.last}: must be at least 1")
        paths = collect(args.inputs, args.last)
        if any(same_file(Path(args.output), path) for path in paths):
            raise MTError(f"-o {args.output} is one of the checkpoints to average: refusing")
        save_checkpoint(average(paths), Path(args.output))
    print(f"averaged {len(paths)} checkpoints into {args.output}: {', '.join(map(str, paths))}")


if __name__ == "__main__":
    main()
