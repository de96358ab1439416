"""How well sentence segmenters find the boundaries of joined test sentences: each language's
test split joined --group lines at a time, split by sentencex (mt's) and, where it knows the
language, pysbd; per language and segmenter, the share of true boundaries found, the false
splits and the seconds taken. Prints a markdown table (docs/documents.md).

    python scripts/segmentation_quality.py --data-root DATA [--languages de en fr cs]

pysbd is not a dependency of mt: pip install pysbd to compare it (else its column is empty).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import sentencex

from mt.data.readers import iter_lines


def boundaries(pieces: list[str]) -> set[int]:
    """Where each piece after the first starts, counted without whitespace."""
    found, position = set(), 0
    for piece in pieces[:-1]:
        position += len("".join(piece.split()))
        found.add(position)
    return found


def measured(lines: list[str], group: int, split: Callable[[str], list[str]]) -> dict:
    """Boundaries found and false splits of split over the lines joined group at a time."""
    true = found = false = 0
    started = time.perf_counter()
    for start in range(0, len(lines), group):
        chunk = lines[start : start + group]
        truth = boundaries(chunk)
        cuts = boundaries(split(" ".join(chunk)))
        true, found, false = true + len(truth), found + len(truth & cuts), false + len(cuts - truth)
    return {"true": true, "found": found, "false": false, "seconds": time.perf_counter() - started}


def segmenters(lang: str) -> dict[str, Callable[[str], list[str]] | None]:
    """sentencex, and pysbd when it is installed and knows the language (else None)."""
    found = {"sentencex": lambda text: list(sentencex.segment(lang, text)), "pysbd": None}
    try:
        import pysbd

        pysbd_segmenter = pysbd.Segmenter(language=lang, clean=False)
        found["pysbd"] = pysbd_segmenter.segment
    except (ImportError, ValueError):  # not installed, or no rules for lang
        pass
    return found


def cell(result: dict | None) -> list[str]:
    if result is None:
        return ["", "", ""]
    share = 100 * result["found"] / max(result["true"], 1)
    return [f"{share:.1f}% of {result['true']}", str(result["false"]), f"{result['seconds']:.2f}"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, required=True, help="holds multi30k/")
    parser.add_argument("--languages", nargs="+", default=["de", "en", "fr", "cs"])
    parser.add_argument("--split", default="test_2016_flickr")
    parser.add_argument("--group", type=int, default=8, help="lines joined into one text")
    args = parser.parse_args(argv)
    head = ["language", "sentencex found", "false splits", "s", "pysbd found", "false splits", "s"]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for lang in args.languages:
        path = args.data_root / "multi30k" / f"{args.split}.{lang}.gz"
        lines = [line.strip() for line in iter_lines(path) if line.strip()]
        cells = [lang]
        for split in segmenters(lang).values():
            cells += cell(None if split is None else measured(lines, args.group, split))
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
