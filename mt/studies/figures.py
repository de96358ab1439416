"""A study's figures: scores by source length, by long input (as one input and, with
segmented, split into sentences) and target-word F by training frequency, one line per row
with its seeds' spread."""

from __future__ import annotations

import itertools
from pathlib import Path

from mt.studies.grid import Run
from mt.studies.plots import draw
from mt.studies.report import by_length, label, ordered_rows, per_bucket
from mt.studies.search_errors_report import search_errors_figure
from mt.studies.spec import Study


def draw_figures(study: Study, runs: list[Run], extra: dict, directory: Path) -> dict:
    """The study's PNG figures in directory, by name: by_length, long_inputs, word_f,
    search_errors."""
    drawn, long_scores = {}, extra["long_inputs"]
    _, bleu = per_bucket(study, runs, by_length, "words", "bleu")
    _, chrf = per_bucket(study, runs, by_length, "words", "chrf")
    buckets = runs[0].test["by_length"]
    names = [f"{b['words']}\n({b['sentences']})" for b in buckets]
    drawn["by_length"] = directory / "by_length.png"
    draw(drawn["by_length"], names, {"BLEU": bleu, "chrF": chrf}, "source words (sentences)")
    if long_scores:
        rows = ordered_rows(study)
        ks = [str(entry["k"]) for entry in long_scores[rows[0].name][0]]
        panels = {"BLEU": {}, "chrF": {}, "output / reference length": {}}
        ways = [("", lambda e: e)] + [(", segmented", lambda e: e["segmented"])] * study.segmented
        for row, (way, scored) in itertools.product(rows, ways):
            seeds = long_scores[row.name]
            for title, key in zip(panels, ("bleu", "chrf", "length_ratio"), strict=True):
                panels[title][label(row) + way] = [
                    [scored(s[j])[key] for s in seeds] for j in range(len(ks))
                ]
        drawn["long_inputs"] = directory / "long_inputs.png"
        draw(drawn["long_inputs"], ks, panels, "test sentences joined into one input")
    word_f = extra["word_f"]["by_run"]
    names, f = per_bucket(study, runs, lambda run: word_f[str(run.directory)], "train_count", "f")
    drawn["word_f"] = directory / "word_f.png"
    where = f"occurrences in the training targets of {extra['word_f']['counted']}"
    draw(drawn["word_f"], names, {"target-word F-measure": f}, where)
    if extra.get("search_errors"):
        drawn["search_errors"] = directory / "search_errors.png"
        search_errors_figure(study, extra["search_errors"], drawn["search_errors"])
    return drawn
