"""`python -m mt.average RUN_DIR --last N -o averaged.pt`: average checkpoints' weights.

Averaging the last few checkpoints of a run (Vaswani et al., 2017; Junczys-Dowmunt et al.,
2016) usually gains a little BLEU for free. Train with `trainer.keep_last=N` to keep them;
the inputs may also be checkpoint files named one by one. The result is a checkpoint like
any other for mt.evaluate and mt.translate (it has no optimizer state, so it does not resume).
Nothing it reads is overwritten: the output may be neither an input nor a file of them.

Examples:
    python -m mt.average runs/tf --last 5 -o runs/tf/averaged.pt
    python -m mt.average a.pt b.pt c.pt -o abc.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mt.common.checkpoint import save_checkpoint
from mt.common.errors import MTError, reported
from mt.common.files import same_file
from mt.training.averaging import average, collect


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m mt.average",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
