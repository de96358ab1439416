"""Runs side by side: every results.json as one row of a markdown table (mt.compare and
scripts/results.py)."""

from __future__ import annotations

import json
from pathlib import Path

from mt.common.errors import MTError
from mt.config.checks import parse

COLUMNS = (
    "run",
    "model",
    "params",
    "valid BLEU",
    "test BLEU",
    "test chrF",
    "test BLEU lc",
    "steps",
    "chosen on valid",
    "train time",
    "tgt tok/s",
    "device",
    "commit",
)


def find_results(directories: list[str]) -> list[Path]:
    found = []
    for name in directories:
        directory = Path(name)
        if not directory.is_dir():
            raise MTError(f"{directory}: not a directory")
        runs = sorted(directory.rglob("results.json"))
        if not runs:
            raise MTError(f"{directory}: no results.json below it (has training finished?)")
        found += runs
    return found


def row(path: Path) -> list[str]:
    try:
        r = json.loads(path.read_text(encoding="utf-8"))
        seconds = round(r["train_seconds"])
        return [
            str(path.parent),
            r["model"],
            f"{r['params'] / 1e6:.1f}M",
            f"{r['valid']['bleu']:.2f}",
            f"{r['test']['bleu']:.2f}",
            f"{r['test']['chrf']:.2f}",
            f"{r['test']['bleu_lc']:.2f}" if "bleu_lc" in r["test"] else "",
            str(r["steps"]),
            chosen(r.get("selection")),
            f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}",  # h:mm:ss
            f"{r['tgt_tokens_per_sec']:.0f}",
            r.get("hardware", r["device"]),
            (r.get("commit") or "")[:10],  # short, with its -dirty mark cut; see results.json
        ]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise MTError(f"{path}: not an mt results file ({e!r})") from None


def direction_rows(path: Path) -> list[list[str]]:
    """A multilingual run's test scores per direction, one row each under the run's own
    (none for a single-direction run), labelled "de-fr (zero-shot, 35.0% in fr)": a direction
    it never saw, and the share of its output that reads as the language asked for."""
    test = json.loads(path.read_text(encoding="utf-8"))["test"]
    found = []
    for name, scores in test.get("directions", {}).items():
        notes = ["zero-shot"] if name in test.get("zero_shot", []) else []
        if "percent_in_target" in scores:  # results.json files before 12-01 lack it
            notes.append(f"{scores['percent_in_target']:.1f}% in {parse(name)[1]}")
        cells = [f"{path.parent} {name}" + (f" ({', '.join(notes)})" if notes else ""), "", "", ""]
        cells += [f"{scores[key]:.2f}" for key in ("bleu", "chrf", "bleu_lc")]
        found.append(cells + [""] * (len(COLUMNS) - len(cells)))
    return found


def chosen(selection: dict | None) -> str:
    """The reported checkpoint and length penalty, e.g. "averaged.pt, lp 1.2"."""
    if not selection:  # results.json from before the choice was recorded
        return ""
    return f"{selection['checkpoint']}, lp {selection['length_penalty']:g}"


def markdown_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)
