"""`python -m mt.study STUDY.yaml [--runs runs] [--data-root DATA] [--write FILE.md...]`:
train the study's runs that are missing (rows x seeds; unfinished ones resume, finished ones
are kept; --jobs N trains N at once), then its distilled corpora and the rows that train on
them; evaluate what its report needs (ensembles, long inputs; each kept once done), and write
the report: <runs>/<study>.md with its figures in <runs>/<study>/, and between the markers
`<!-- study: NAME -->` and `<!-- end of study: NAME -->` of each FILE.md. With --only-seeds
S..., only those seeds' runs are trained and evaluated, and no report is written: a CPU trains
a study a seed at a time, and the report waits for every seed."""

from __future__ import annotations

import argparse
from pathlib import Path

from mt.common.errors import corpus_at, reported
from mt.config.arguments import bounded, override
from mt.evaluation.significance import SEED
from mt.studies.conduct import Options, conduct


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m mt.study",
        usage="%(prog)s STUDY.yaml [options]",  # the options, each with its help, follow
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("study", type=Path, help="a study file, e.g. studies/architectures.yaml")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="one run per row, seed")
    parser.add_argument("--data-root", help="data.root of every run (default: mt's own)")
    parser.add_argument(
        "--threads", type=bounded(1, 1024), default=2, help="CPU threads of each run"
    )
    parser.add_argument(
        "--jobs",
        type=bounded(1, 256),
        default=1,
        help="runs trained at once (a GPU: several), logs in <runs>",
    )
    parser.add_argument(
        "--set",
        type=override,
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="mt.train overrides added to every run's (trainer.compile=false); kept as theirs",
    )
    parser.add_argument(
        "--seed", type=bounded(0, 2**32 - 1), default=SEED, help="sacreBLEU's resampling seed"
    )
    parser.add_argument(
        "--only-seeds",
        type=bounded(0, 2**32 - 1),
        nargs="+",
        default=[],
        help="train and evaluate these seeds' runs alone (a sitting at a time), no report",
    )
    parser.add_argument("--write", type=Path, nargs="*", default=[], help="put the report here")
    parser.add_argument(
        "--table", type=Path, nargs="*", default=[], help="put the summary table here (README)"
    )
    parser.add_argument("--figures", type=Path, help="the PNG figures' directory")
    parser.add_argument(
        "--outputs", type=Path, help="copy each run's results and test output here (no weights)"
    )
    args = parser.parse_args(argv)
    with reported(), corpus_at("--data-root"):
        conduct(Options(**vars(args)))


if __name__ == "__main__":
    main()
