"""results.json, of every kind (a trained run, a pivot row, a distilled student): written by
one function and read by one, so that every tool reads what every other writes."""

from __future__ import annotations

import json
from pathlib import Path

from mt.common.errors import MTError
from mt.common.files import write_text

RESULTS = "results.json"
REQUIRED = ("config", "valid", "test")  # what every kind has


def write_results_file(directory: Path, results: dict) -> Path:
    """directory/results.json, written whole or not at all."""
    path = directory / RESULTS
    write_text(path, json.dumps(results, indent=2) + "\n")
    return path


def read_results(path: Path) -> dict:
    """A results.json, or one line naming the file and what is wrong with it."""
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MTError(f"{path}: not JSON ({e})") from None
    missing = [key for key in REQUIRED if not isinstance(found, dict) or key not in found]
    if missing:
        raise MTError(f"{path}: not an mt results file (no {', '.join(missing)})")
    return found
