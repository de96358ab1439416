"""`python -m mt.compare RUN_DIR... | MULTIRUN_DIR`: the runs side by side, as markdown.

Every results.json under the given directories is one row, so a Hydra multirun directory
(`python -m mt.train -m +experiment=rnn,bahdanau,transformer`) compares in one call.
"""

from __future__ import annotations

import argparse

from mt.common.errors import reported
from mt.training.comparison import find_results, markdown_table, row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mt.compare", description=__doc__)
    parser.add_argument("runs", nargs="+", help="run directories or a multirun directory")
    args = parser.parse_args(argv)
    with reported():
        print(markdown_table([row(path) for path in find_results(args.runs)]))


if __name__ == "__main__":
    main()
