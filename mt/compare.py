"""`python -m mt.compare RUN_DIR... | MULTIRUN_DIR`: the runs side by side, as markdown.

Every results.json under the given directories is one row, so a Hydra multirun directory
(`python -m mt.train -m +experiment=rnn,bahdanau,transformer`) compares in one call; a
multilingual run's row is followed by one row per direction it was tested on.
"""

from __future__ import annotations

import argparse

from mt.common.errors import reported
from mt.decoding.significance import SEED
from mt.training.comparison import (
    baseline_index,
    direction_rows,
    find_results,
    markdown_table,
    row,
    significance_table,
    tested_runs,
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mt.compare", description=__doc__)
    parser.add_argument("runs", nargs="+", help="run directories or a multirun directory")
    parser.add_argument("--significance", action="store_true", help="intervals and p-values")
    parser.add_argument("--baseline", help="the run the others are tested against (the first)")
    parser.add_argument("--data-root", help="where the runs' corpus lies now, if it has moved")
    parser.add_argument("--seed", type=int, default=SEED, help="sacreBLEU's resampling seed")
    args = parser.parse_args(argv)
    with reported():
        paths = find_results(args.runs)
        rows = [r for path in paths for r in [row(path), *direction_rows(path)]]
        print(markdown_table(rows))
        if args.significance:
            baseline = baseline_index(paths, args.baseline)
            tested, sentences = tested_runs(paths, baseline, args.data_root, args.seed)
            print("\n" + significance_table(tested, sentences, args.seed))


if __name__ == "__main__":
    main()
