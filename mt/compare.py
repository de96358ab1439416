"""`python -m mt.compare RUN_DIR... | MULTIRUN_DIR`: the runs side by side, as markdown.

Every results.json under the given directories is one row, so a Hydra multirun directory
(`python -m mt.train -m +experiment=rnn,bahdanau,transformer`) or a study's runs folder
compares in one call; a multilingual run's row is followed by one row per direction it was
tested on, and a study's ensembles (their test scores) come last.
"""

from __future__ import annotations

import argparse

from mt.common.errors import MTError, corpus_at, reported
from mt.evaluation.comparison import (
    baseline_index,
    direction_rows,
    ensemble_row,
    find_ensembles,
    find_results,
    largest_differences,
    markdown_table,
    row,
    same_test_set,
    significance_table,
)
from mt.evaluation.significance import SEED, significance


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m mt.compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("runs", nargs="+", help="run directories or a multirun directory")
    parser.add_argument("--significance", action="store_true", help="intervals and p-values")
    parser.add_argument("--baseline", help="the run the others are tested against (the first)")
    parser.add_argument("--data-root", help="where the runs' corpus lies now, if it has moved")
    parser.add_argument(
        "--direction", help="a multilingual run's direction to test (e.g. de-en); others must be it"
    )
    parser.add_argument("--seed", type=int, default=SEED, help="sacreBLEU's resampling seed")
    parser.add_argument(
        "--examples", type=int, default=0, help="the N sentences each run differs most in"
    )
    args = parser.parse_args(argv)
    with reported(), corpus_at("--data-root"):
        if args.examples < 0:
            raise MTError(f"--examples {args.examples}: must be ≥ 0")
        if not 0 <= args.seed < 2**32:  # numpy's generators take no negative seed
            raise MTError(f"--seed {args.seed}: must be in [0, 2**32)")
        paths = find_results(args.runs)
        rows = [r for path in paths for r in [row(path), *direction_rows(path)]]
        rows += [ensemble_row(path) for path in find_ensembles(args.runs)]
        print(markdown_table(rows))
        if args.significance or args.examples:
            baseline = baseline_index(paths, args.baseline)
            directions = [args.direction] * len(paths)
            test_set = same_test_set(paths, baseline, args.data_root, directions)
        if args.significance:
            systems = [(name, [hyps]) for name, hyps in test_set.systems]  # one seed each
            tested = significance(systems, test_set.references, args.seed)
            print("\n" + significance_table(tested, len(test_set.references), args.seed))
        if args.examples:
            print("\n" + largest_differences(test_set, args.examples))


if __name__ == "__main__":
    main()
