"""A study's search errors (mt/evaluation/search_errors.py) in its report: per row and beam
size, the shares of test sentences whose output is the reference, a search error (the model
scores the reference higher) or a model error; and a figure of each sentence's output score
against its reference's, the first seed at the largest beam, one panel per row."""

from __future__ import annotations

from pathlib import Path

from mt.studies.plots import scatter
from mt.studies.report import as_markdown, label, mean_sd, ordered_rows
from mt.studies.spec import Study

KINDS = {"exact": "the reference", "search_errors": "search error", "model_errors": "model error"}


def search_errors_table(study: Study, scores: dict[str, list[dict]]) -> str:
    """Per row and beam: the three shares (%) and BLEU, mean ± sd over the row's seeds."""
    head = ["row", "beam", *(f"{name} (%)" for name in KINDS.values()), "BLEU"]
    lines = []
    for row in ordered_rows(study):
        per_seed = scores[row.name]
        for j, beam in enumerate(study.search_errors):
            at_beam = [seed["beams"][j] for seed in per_seed]
            shares = [mean_sd([100 * entry[kind] for entry in at_beam]) for kind in KINDS]
            lines.append([label(row), str(beam), *shares, mean_sd([e["bleu"] for e in at_beam])])
    return as_markdown(head, lines)


def search_errors_figure(study: Study, scores: dict[str, list[dict]], path: Path) -> None:
    """Output score against reference score per test sentence, coloured by verdict."""
    panels = {}
    for row in ordered_rows(study):
        widest = scores[row.name][0]["beams"][-1]
        points: dict[str, list[tuple[float, float]]] = {name: [] for name in KINDS.values()}
        for judged in (j for j in widest["sentences"] if j is not None):
            points[KINDS[judged["verdict"]]].append((judged["reference"], judged["output"]))
        panels[f"{label(row)}, beam {widest['beam']}"] = points
    axes = ("reference's score", "output's score (log-prob / length penalty)")
    scatter(path, panels, *axes)
