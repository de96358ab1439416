"""A study's report as markdown: each row's seeds as mean ± sd, significance with each test
sentence's seeds' translations resampled together, and where the rows differ (source length,
long inputs, word frequency by one count table, the sentences that differ most), with the
leak audit."""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from mt.evaluation.comparison import (
    TestSet,
    clock,
    largest_differences,
    same_test_set,
    significance_table,
)
from mt.evaluation.scores import word_f_by_frequency
from mt.evaluation.significance import Tested, significance
from mt.studies.grid import Run, views
from mt.studies.kept import target_word_counts
from mt.studies.spec import Study, StudyRow, baseline_row

Buckets = Callable[[Run], list[dict]]  # a run's test scores per bucket


def sections(study: Study, runs: list[Run]) -> list[tuple[Study, list[Run]]]:
    """The study once per test set its runs are scored on (a direction), with the rows and
    runs of it, in the order of first appearance; one section keeps the study as it is."""
    by_direction: dict[str, list[Run]] = {}
    for run in runs:
        for view in views(run):
            by_direction.setdefault(view.compared, []).append(view)
    if len(by_direction) == 1:
        return [(study, next(iter(by_direction.values())))]
    by_section = []
    for direction, of_it in by_direction.items():
        rows = [row for row in study.rows if any(run.row is row for run in of_it)]
        baseline = study.baseline if study.baseline in {row.name for row in rows} else None
        title = f"{study.title}: {direction.replace('-', '→')}"
        by_section.append((replace(study, title=title, rows=rows, baseline=baseline), of_it))
    return by_section


def label(row: StudyRow) -> str:
    return row.label or row.name


def ordered_rows(study: Study) -> list[StudyRow]:
    """The baseline row first, then the others in the file's order."""
    base = baseline_row(study)
    return [base, *(row for row in study.rows if row is not base)]


def of_row(runs: list[Run], row: StudyRow) -> list[Run]:
    return [run for run in runs if run.row is row]


def mean_sd(values: list[float | None]) -> str:
    """mean ± sample sd of the values, the mean alone for one, "" without any."""
    present = [v for v in values if v is not None]
    if not present:
        return ""
    if len(present) == 1:
        return f"{present[0]:.2f}"
    return f"{statistics.mean(present):.2f} ± {statistics.stdev(present):.2f}"


def rows_table(study: Study, runs: list[Run], ensembles: dict[str, dict]) -> str:
    """One line per row: test BLEU and chrF over its seeds, each seed's BLEU, the ensemble."""
    head = ["row", "seeds", "valid BLEU", "test BLEU", "test chrF", "BLEU per seed"]
    head += ["ensemble BLEU / chrF"] * bool(ensembles) + ["params", "steps", "train time"]
    head += ["device", "commit"]
    # A multilingual model's output may be in another language than asked (zero-shot).
    languages = any("percent_in_target" in run.test for run in runs)
    head[5:5] = ["% in target language"] * languages
    lines = []
    for row in ordered_rows(study):
        results = [run.results for run in of_row(runs, row)]
        test = [run.test for run in of_row(runs, row)]
        valid = [run.valid["bleu"] for run in of_row(runs, row)]
        cells = [label(row), str(len(results)), mean_sd(valid)]
        cells.append(mean_sd([t["bleu"] for t in test]))
        cells.append(mean_sd([t["chrf"] for t in test]))
        cells += [mean_sd([t.get("percent_in_target") for t in test])] * languages
        cells.append(", ".join(f"{t['bleu']:.2f}" for t in test))
        if ensembles:
            scores = ensembles.get(row.name)  # a row of one seed has none
            cells.append(f"{scores['bleu']:.2f} / {scores['chrf']:.2f}" if scores else "")
        cells += [f"{results[0]['params'] / 1e6:.1f}M", str(results[0]["steps"])]
        cells.append(", ".join(clock(r["train_seconds"]) for r in results))
        # In seed order, each once.
        cells.append(", ".join(dict.fromkeys(where_trained(r) for r in results)))
        cells.append(", ".join(dict.fromkeys((r.get("commit") or "")[:10] for r in results)))
        lines.append(cells)
    return as_markdown(head, lines)


def where_trained(results: dict) -> str:
    """Where a run trained: the device and, on a CPU, its precision (bf16 or fp32)."""
    device = results.get("hardware") or results.get("device", "")
    return f"{device}, {results['precision']}" if "precision" in results else device


def as_markdown(head: list[str], lines: list[list[str]]) -> str:
    rows = [head, ["---"] * len(head), *lines]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in rows)


def per_bucket(study: Study, runs: list[Run], buckets: Buckets, name: str, score: str):
    """Bucket names, and per row label, per bucket, its seeds' values of score."""
    names = [bucket[name] for bucket in buckets(runs[0])]
    lines = {}
    for row in ordered_rows(study):
        tests = [buckets(run) for run in of_row(runs, row)]
        lines[label(row)] = [
            [None if t[k][score] is None else scale(t[k][score], score) for t in tests]
            for k in range(len(names))
        ]
    return names, lines


def bucket_table(study: Study, runs: list[Run], buckets: Buckets, name: str, score: str) -> str:
    """One line per bucket (by_length, word_f_by_frequency), one column per row: the score's
    mean ± sd over the row's seeds."""
    first = buckets(runs[0])
    size = "sentences" if "sentences" in first[0] else "ref_words"
    names, per_row = per_bucket(study, runs, buckets, name, score)
    head = [name, size, *per_row]
    lines = [
        [names[k], str(bucket[size]), *(mean_sd(values[k]) for values in per_row.values())]
        for k, bucket in enumerate(first)
    ]
    return as_markdown(head, lines)


def by_length(run: Run) -> list[dict]:
    """The run's test scores by source length, as its results.json has them."""
    return run.test["by_length"]


def word_f_buckets(study: Study, runs: list[Run], data_root: str | None) -> dict:
    """Every run's target-word F by training frequency, with one count table for all: the
    baseline row's first run's training targets of the section's direction (each run's own
    would bucket a multilingual run's words by counts of two corpora). {"counted": whose,
    "by_run": {run directory: buckets}}."""
    counted = of_row(runs, ordered_rows(study)[0])[0]
    counts = target_word_counts(counted, data_root)
    test_set = tested_runs(runs, data_root)
    by_run = {
        str(run.directory): word_f_by_frequency(hyps, test_set.references, counts)
        for run, (_, hyps) in zip(runs, test_set.systems, strict=True)
    }
    return {"counted": f"{label(counted.row)}, {counted.compared}", "by_run": by_run}


def scale(value: float, score: str) -> float:
    """F-measure, precision and recall as percentages, as BLEU and chrF are."""
    return 100 * value if score in ("f", "precision", "recall") else value


def tested_runs(runs: list[Run], data_root: str | None) -> TestSet:
    """The runs' test outputs (each row's direction) on their common test set, the first's
    first."""
    paths = [run.directory / "results.json" for run in runs]
    return same_test_set(paths, 0, data_root, [run.direction for run in runs])


def clustered(
    study: Study, runs: list[Run], data_root: str | None
) -> tuple[TestSet, list[tuple[str, list[list[str]]]], int]:
    """Each row's first n seeds' test outputs (n: the fewest seeds of any row; baseline row
    first) on their common test set, as (label, [seed outputs]), and n; other references or
    a missing output are refused by name."""
    seeds = min(len(of_row(runs, row)) for row in study.rows)
    in_order = [run for row in ordered_rows(study) for run in of_row(runs, row)[:seeds]]
    per_run = tested_runs(in_order, data_root)
    systems = []
    for k, row in enumerate(ordered_rows(study)):
        outputs = per_run.systems[k * seeds : (k + 1) * seeds]
        systems.append((label(row), [hyps for _, hyps in outputs]))
    return per_run, systems, seeds


def significance_section(
    study: Study, runs: list[Run], data_root: str | None, seed: int
) -> tuple[str, list[Tested]]:
    """sacreBLEU's intervals and paired tests of the rows' seeds, each test sentence a
    cluster of its seeds' translations: the table, and each row's Tested (baseline first)."""
    test_set, systems, seeds = clustered(study, runs, data_root)
    tested = significance(systems, test_set.references, seed)
    sentences = len(test_set.references)
    if seeds == 1:
        return significance_table(tested, sentences, seed), tested
    how = (
        f"each row's first {seeds} seeds; a resample draws test sentences, each with all "
        f"{seeds} of its translations (a cluster), and a randomization trial swaps the two "
        "rows' translations of a sentence for every seed at once"
    )
    return significance_table(tested, sentences, seed, seeds, how), tested


def summary_table(study: Study, runs: list[Run], tested: list[Tested]) -> str:
    """The headline, one line per row: test BLEU and chrF as the seeds' mean ± sd, the score
    of the seeds' outputs together with its 95% interval, and p against the baseline (paired
    bootstrap / approximate randomization)."""
    head = ["row", "seeds", "params"]
    head += [f"{what} {m}" for m in ("BLEU", "chrF") for what in ("test", "seeds together", "p")]
    lines = []
    for row, row_test in zip(ordered_rows(study), tested, strict=True):
        row_runs = of_row(runs, row)
        cells = [label(row), str(len(row_runs)), f"{row_runs[0].results['params'] / 1e6:.1f}M"]
        for m in ("bleu", "chrf"):
            low, high = row_test.mean[m] - row_test.ci[m], row_test.mean[m] + row_test.ci[m]
            together = f"{row_test.score[m]:.2f} ({low:.2f}–{high:.2f})"
            cells += [mean_sd([run.test[m] for run in row_runs]), together]
            p = row_test.p_bootstrap
            cells.append(
                "baseline" if p is None else f"{p[m]:.4f} / {row_test.p_randomization[m]:.4f}"
            )
        lines.append(cells)
    return as_markdown(head, lines)


def first_seed_differences(study: Study, runs: list[Run], data_root: str | None) -> str:
    """The sentences where the baseline and each other row differ most, first seed of each."""
    first = [of_row(runs, row)[0] for row in ordered_rows(study)]
    test_set = tested_runs(first, data_root)
    outputs = [hyps for _, hyps in test_set.systems]
    test_set.systems = [(label(run.row), h) for run, h in zip(first, outputs, strict=True)]
    return largest_differences(test_set, study.examples)


def leak_audit(runs: list[Run]) -> str:
    """One line per held-out split: its pairs (and sources) also in the training data."""
    leaks = runs[0].results.get("leaks") or {}
    lines = []
    for split, audit in leaks.items():
        lines.append(
            f"- {split}: {audit['pairs']} of {audit['sentences']} pairs also in training "
            f"({audit['pairs_normalised']} after normalising case, punctuation and spaces); "
            f"sources alone: {audit['sources']} ({audit['sources_normalised']})"
        )
    split = runs[0].results["config"]["data"]["train_split"]
    lines.append(f"- the subword model: trained on the `{split}` split alone (train_tokenizer)")
    return "\n".join(lines)


def image(figures: dict, name: str, caption: str, written_to: Path) -> str:
    """A markdown image of figure name, its path relative to the file it is written into."""
    if name not in figures:
        return ""
    relative = Path(os.path.relpath(figures[name], written_to.parent)).as_posix()
    return f"\n\n![{caption}]({relative})"


def study_report(parts: dict, figures: dict, written_to: Path) -> str:
    """The report's markdown from its parts (tables by name), figures relative to written_to."""
    sections = [parts["title"], parts["rows"], "#### Significance\n\n" + parts["significance"]]
    sections.append(
        "#### BLEU by source length (words), mean ± sd over seeds\n\n"
        + parts["bleu_by_length"]
        + "\n\n#### chrF by source length\n\n"
        + parts["chrf_by_length"]
        + image(figures, "by_length", "BLEU and chrF by source length", written_to)
    )
    if "long_inputs" in parts:
        sections.append(
            "#### Long inputs: test sentences joined k at a time, translated as one input"
            + " (and split into sentences first, where segmented)\n\n"
            + parts["long_inputs"]
            + image(figures, "long_inputs", "BLEU, chrF and length ratio by k", written_to)
        )
    sections.append(
        "#### Target-word F-measure (%) by the word's count in the training targets of "
        + parts["word_f_counted"]
        + "\n\n"
        + parts["word_f"]
        + image(figures, "word_f", "word F-measure by training frequency", written_to)
    )
    if "search_errors" in parts:
        sections.append(
            "#### Search errors and model errors: test sentences, mean ± sd over seeds\n\n"
            + parts["search_errors"]
            + image(figures, "search_errors", "output score against reference score", written_to)
        )
    if "examples" in parts:
        sections.append(parts["examples"])
    sections.append("#### Leak audit\n\n" + parts["leaks"])
    return "\n\n".join(sections)


def report_parts(
    study: Study, runs: list[Run], extra: dict, data_root: str | None, seed: int
) -> dict:
    """Every table of the report, by name; extra holds the ensembles', the long inputs' and
    the word-F buckets' scores."""
    word_f = extra["word_f"]["by_run"]

    def word_f_of(run: Run) -> list[dict]:
        return word_f[str(run.directory)]

    parts = {
        "title": f"### {study.title}",
        "rows": rows_table(study, runs, extra["ensembles"]),
        "bleu_by_length": bucket_table(study, runs, by_length, "words", "bleu"),
        "chrf_by_length": bucket_table(study, runs, by_length, "words", "chrf"),
        "word_f": bucket_table(study, runs, word_f_of, "train_count", "f"),
        "word_f_counted": extra["word_f"]["counted"],
        "leaks": leak_audit(runs),
    }
    parts["significance"], tested = significance_section(study, runs, data_root, seed)
    parts["summary"] = summary_table(study, runs, tested)
    if study.examples:
        parts["examples"] = first_seed_differences(study, runs, data_root)
    return parts
