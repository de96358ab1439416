"""A study's long inputs in its report: per k (test sentences joined k at a time), row and
way (as one input; split into sentences first), BLEU and chrF of the row's seeds' outputs
together with their 95% interval (each joined input a cluster of its seeds' translations, as
in the significance section), and the output / reference length ratio, mean ± sd over the
seeds. Scores kept before the outputs were (no "hyps") show the seeds' mean ± sd instead."""

from __future__ import annotations

from mt.evaluation.long_inputs import joined
from mt.evaluation.significance import significance
from mt.studies.report import as_markdown, label, mean_sd, ordered_rows
from mt.studies.spec import Study

METRICS = ("bleu", "chrf")


def ways(study: Study) -> list[tuple[str, object]]:
    """How the joined inputs were translated: as one input, and split first if segmented."""
    both = [("one input", lambda entry: entry), ("segmented", lambda entry: entry["segmented"])]
    return both[: 1 + study.segmented]


def with_interval(name: str, outputs: list[list[str]], targets: list[str], seed: int) -> list:
    """BLEU and chrF of the seeds' outputs together, each with its 95% interval."""
    (tested,) = significance([(name, outputs)], targets, seed)
    return [
        f"{tested.score[m]:.2f} ({tested.mean[m] - tested.ci[m]:.2f}–"
        f"{tested.mean[m] + tested.ci[m]:.2f})"
        for m in METRICS
    ]


def long_inputs_table(study: Study, scores: dict, references: list[str], seed: int) -> str:
    """One line per k, row and way: BLEU and chrF (95% interval), length ratio; under a line
    that says how they were computed."""
    head = ["k", "inputs", "longest source (words)", "row", "input", "BLEU", "chrF"]
    head.append("length ratio")
    rows, lines, intervals = ordered_rows(study), [], True
    for j, entry in enumerate(scores[rows[0].name][0]):
        targets = joined(references, entry["k"])
        for row in rows:
            per_seed = [seed_scores[j] for seed_scores in scores[row.name]]
            for way, scored in ways(study):
                found = [scored(e) for e in per_seed]
                cells = [str(entry["k"]), str(entry["inputs"]), str(entry["longest_source_words"])]
                cells += [label(row), way]
                if all("hyps" in f for f in found):
                    outputs = [f["hyps"] for f in found]
                    cells += with_interval(label(row), outputs, targets, seed)
                else:
                    cells += [mean_sd([f[m] for f in found]) for m in METRICS]
                    intervals = False
                lines.append([*cells, mean_sd([f["length_ratio"] for f in found])])
    said = (
        "the seeds' outputs together, with their 95% interval"
        if intervals
        else ("mean ± sd over the seeds (their outputs were not kept)")
    )
    return f"BLEU and chrF: {said}; length ratio: mean ± sd.\n\n" + as_markdown(head, lines)
