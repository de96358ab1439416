"""Results files of every kind, written by one function and read by one, so that every tool
reads what every other writes: a run's results.json (a trained run, a pivot row, a distilled
student) and an ensemble's scores (<row>-ensemble-seeds1-2-3.json, kept by a study)."""

from __future__ import annotations

import json
from fnmatch import fnmatch
from pathlib import Path

from mt.common.errors import MTError
from mt.common.files import write_text

RESULTS = "results.json"
ENSEMBLE_FILES = "*-ensemble-seeds*.json"
# What each kind always has: a run is trained, so it has its config and valid scores; an
# ensemble of finished runs has its members and test scores only.
REQUIRED = {"run": ("config", "valid", "test"), "ensemble": ("members", "bleu", "chrf")}


def results_kind(path: Path) -> str:
    """ "ensemble" for an ensemble's scores file, else "run"."""
    return "ensemble" if fnmatch(path.name, ENSEMBLE_FILES) else "run"


def missing_keys(path: Path, results: object) -> list[str]:
    """The keys its kind requires that results lacks."""
    required = REQUIRED[results_kind(path)]
    return [key for key in required if not isinstance(results, dict) or key not in results]


def write_results_file(path: Path, results: dict) -> Path:
    """results at path (a .json file, or a run's directory: its results.json), written whole
    or not at all."""
    path = path if path.suffix == ".json" else path / RESULTS
    if missing := missing_keys(path, results):  # what read_results would refuse
        raise ValueError(f"{path}: results without {', '.join(missing)}")
    write_text(path, json.dumps(results, indent=2) + "\n")
    return path


def read_results(path: Path) -> dict:
    """A results file of either kind, or one line naming the file and what is wrong with it."""
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MTError(f"{path}: not JSON ({e})") from None
    if missing := missing_keys(path, found):
        raise MTError(
            f"{path}: not an mt {results_kind(path)} results file (no {', '.join(missing)})"
        )
    return found
