"""`python -m mt.compare RUN_DIR... | MULTIRUN_DIR`: the runs side by side, as markdown.

Every results.json under the given directories is one row, so a Hydra multirun directory
(`python -m mt.train -m +experiment=rnn,bahdanau,transformer`) compares in one call; a
multilingual run's row is followed by one row per direction it was tested on.
"""

from __future__ import annotations

import argparse

from mt.common.errors import reported
from mt.training.comparison import direction_rows, find_results, markdown_table, row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mt.compare", description=__doc__)
    parser.add_argument("runs", nargs="+", help="run directories or a multirun directory")
    args = parser.parse_args(argv)
    with reported():
        rows = [r for path in find_results(args.runs) for r in [row(path), *direction_rows(path)]]
        print(markdown_table(rows))


if __name__ == "__main__":
    main()
