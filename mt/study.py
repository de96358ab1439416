"""`python -m mt.study STUDY.yaml [--runs runs] [--data-root DATA] [--write FILE.md]`: train
the study's runs that are missing (rows x seeds; unfinished ones resume, finished ones are
kept), evaluate what the report needs, and write the report (runs/<study>.md, and between the
study's markers in FILE.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mt.common.errors import reported
from mt.studies.grid import study_runs, train_all
from mt.studies.spec import load_study


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mt.study", description=__doc__)
    parser.add_argument("study", type=Path, help="a study file, e.g. studies/architectures.yaml")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="one run per row, seed")
    parser.add_argument("--data-root", help="data.root of every run (default: mt's own)")
    parser.add_argument("--threads", type=int, default=2, help="trainer.num_threads of each run")
    parser.add_argument("--write", type=Path, nargs="*", default=[], help="put the report here")
    args = parser.parse_args(argv)
    with reported():
        study = load_study(args.study)
        runs = study_runs(study, args.runs)
        train_all(runs, args.data_root, args.threads)


if __name__ == "__main__":
    main()
