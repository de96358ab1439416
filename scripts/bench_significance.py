"""How long mt.compare --significance takes for 9 runs of 1000 test sentences: sacreBLEU's
paired bootstrap (1000 resamples) and approximate randomization (10,000 trials) for BLEU and
chrF, 8 runs against a baseline. The runs are test_2016_flickr's references, each with a
different share of its lines cut short, so that their scores differ. Not a test.

    python scripts/bench_significance.py --data-root DATA
"""

from __future__ import annotations

import argparse
import gzip
import platform
import time
from pathlib import Path

from mt.evaluation.significance import significance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-root", required=True, help="the directory holding multi30k/")
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    path = Path(args.data_root) / "multi30k" / "test_2016_flickr.en.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        references = f.read().splitlines()
    systems = [
        (
            f"run{k}",
            [
                [
                    " ".join(s.split()[:-1]) if i % (k + 2) == 0 else s
                    for i, s in enumerate(references)
                ]
            ],
        )  # one seed's outputs each
        for k in range(args.runs)
    ]
    start = time.perf_counter()
    significance(systems, references)
    seconds = time.perf_counter() - start
    print(
        f"{args.runs} runs x {len(references)} sentences: {seconds:.1f} s "
        f"({platform.processor() or platform.machine()})"
    )


if __name__ == "__main__":
    main()
