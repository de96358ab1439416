"""A study from start to end: its missing runs trained (the distilled corpora and the rows
trained on them after their teachers, pivots translated), what its report needs evaluated
(ensembles, long inputs; each kept once done), and the report written (mt.study)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from mt.common.errors import MTError
from mt.common.files import check_markers, replace_block, write_text
from mt.evaluation.significance import SEED
from mt.studies.figures import draw_figures
from mt.studies.grid import Run, study_runs
from mt.studies.kept import (
    ensemble_file,
    ensemble_scores,
    keep_outputs,
    long_input_scores,
    search_error_scores,
    test_split,
)
from mt.studies.launch import distill_corpus, train_all
from mt.studies.long_inputs_report import long_inputs_table
from mt.studies.pivots import evaluate_pivot
from mt.studies.report import (
    of_row,
    report_parts,
    sections,
    study_report,
    word_f_buckets,
)
from mt.studies.search_errors_report import search_errors_table
from mt.studies.spec import Study, load_study, uses_distilled


@dataclass
class Options:
    """How mt.study runs a study: where, with how many threads and jobs, and where it writes."""

    study: Path
    runs: Path = Path("runs")
    data_root: str | None = None
    threads: int = 2
    jobs: int = 1
    set: list[str] = field(default_factory=list)  # mt.train overrides added to every run's
    seed: int = SEED  # sacreBLEU's resampling seed
    write: list[Path] = field(default_factory=list)  # pages that get the report
    table: list[Path] = field(default_factory=list)  # pages that get the summary table
    figures: Path | None = None
    outputs: Path | None = None  # where each run's results and test output are copied
    only_seeds: list[int] = field(default_factory=list)  # these seeds' runs alone, and no report


def conduct(options: Options) -> None:
    """Train what is missing, evaluate what the report needs, and write the report; the
    pages' markers are checked first, before hours of training, not after."""
    study = load_study(options.study)
    study = replace(study, overrides=[*study.overrides, *options.set])
    blocks = markers(options.study.stem)
    for path in options.write:
        check_markers(path, *blocks["report"])
    for path in options.table:
        check_markers(path, *blocks["table"])
    runs = study_runs(study, options.runs)
    if options.only_seeds:
        runs = of_seeds(study, runs, options)
        train_study(study, runs, options)
        for _, views in sections(study, runs):  # a multilingual run once per direction
            for view in views:
                run_evaluations(study, view, options)
            if options.outputs:
                keep_outputs(views, [], options.outputs)
        return
    train_study(study, runs, options)
    write_reports(study, runs, options)


def of_seeds(study: Study, runs: list[Run], options: Options) -> list[Run]:
    """The runs of --only-seeds that train on no distilled corpus (one needs its teacher's every
    seed): a CPU trains a study's seeds a sitting at a time; its report waits for them all."""
    where = f"--only-seeds {' '.join(map(str, options.only_seeds))}"
    if options.write or options.table or options.figures:
        raise MTError(f"{where}: a report covers every seed; write it without --only-seeds")
    chosen = [r for r in runs if r.seed in options.only_seeds and not uses_distilled(r.row)]
    if not chosen:
        raise MTError(f"{where}: the study's seeds are {study.seeds}")
    return chosen


def run_evaluations(study: Study, run: Run, args: Options) -> dict:
    """What the report needs of one run alone (long inputs, search errors), kept beside it."""
    return {
        "long_inputs": study.long_inputs
        and long_input_scores(run, study.long_inputs, args.data_root, study.segmented),
        "search_errors": study.search_errors
        and search_error_scores(run, study.search_errors, args.data_root),
    }


def evaluated(study: Study, runs: list[Run], args: Options) -> dict:
    """The ensembles', the long inputs' and the search errors' scores, per row name, and every
    run's word-F buckets by one count table."""
    extra = {"ensembles": {}, "long_inputs": {}, "search_errors": {}}
    extra["word_f"] = word_f_buckets(study, runs, args.data_root)
    for row in study.rows:
        row_runs = of_row(runs, row)
        if study.ensemble and len(row_runs) > 1:
            extra["ensembles"][row.name] = ensemble_scores(row_runs, args.runs, args.data_root)
        each = [run_evaluations(study, run, args) for run in row_runs]
        for kind in ("long_inputs", "search_errors"):
            if getattr(study, kind):
                extra[kind][row.name] = [evaluations[kind] for evaluations in each]
    return extra


def train_study(study: Study, runs: list[Run], args: Options) -> None:
    """The runs that are missing, the distilled corpora, the rows trained on them, then the
    pivot rows' translations."""
    first = [r for r in runs if not uses_distilled(r.row)]
    train_all(first, args.data_root, args.threads, args.jobs)
    students = [r for r in runs if uses_distilled(r.row)]
    # Students all trained (or their outputs kept without the corpora): nothing to distill.
    if any(not (r.directory / "results.json").is_file() for r in students):
        for corpus in study.distilled:
            teachers = [run for run in runs if run.row.name == corpus.teacher]
            distill_corpus(corpus, teachers, args.runs, args.data_root, args.threads)
    train_all(students, args.data_root, args.threads, args.jobs)
    torch.set_num_threads(args.threads)
    for run in (run for run in runs if run.row.pivot):
        evaluate_pivot(run, runs, args.data_root)


def markers(name: str) -> dict[str, tuple[str, str]]:
    """The blocks a page holds for the study: the whole report, or its summary table."""
    return {
        "report": (f"<!-- study: {name} -->", f"<!-- end of study: {name} -->"),
        "table": (f"<!-- study table: {name} -->", f"<!-- end of study table: {name} -->"),
    }


def add_parts(parts: dict, study: Study, runs: list[Run], extra: dict, args: Options) -> None:
    """The report's tables of what was evaluated beyond each run's test: long inputs (their
    intervals against the test set's references) and search errors."""
    if extra["long_inputs"]:
        references = test_split(runs[0], args.data_root)[1]
        parts["long_inputs"] = long_inputs_table(study, extra["long_inputs"], references, args.seed)
    if extra["search_errors"]:
        parts["search_errors"] = search_errors_table(study, extra["search_errors"])


def write_reports(study: Study, runs: list[Run], args: Options) -> None:
    """The report in <runs>/<study>.md and the --write pages, the summary in the --table
    pages, the figures, and with --outputs what the report was made from; a study of
    several test sets (directions) has a section, and a figures directory, per direction."""
    name, blocks = args.study.stem, markers(args.study.stem)
    own = args.runs / f"{name}.md"
    figures_root = args.figures or args.runs / name
    reports, summaries = {path: [] for path in [own, *args.write]}, []
    by_section = sections(study, runs)
    for section, section_runs in by_section:
        extra = evaluated(section, section_runs, args)
        parts = report_parts(section, section_runs, extra, args.data_root, args.seed)
        add_parts(parts, section, section_runs, extra, args)
        several = len(by_section) > 1
        where = figures_root / section_runs[0].compared if several else figures_root
        figures = draw_figures(section, section_runs, extra, where)
        for path, texts in reports.items():
            texts.append(study_report(parts, figures, path))
        heading = f"**{section.title}**\n\n" if several else ""
        summaries.append(heading + parts["summary"])
        if args.outputs:
            rows = [row for row in section.rows if row.name in extra["ensembles"]]
            ensembles = [ensemble_file(of_row(section_runs, row), args.runs) for row in rows]
            keep_outputs(section_runs, ensembles, args.outputs)
    write_text(own, "\n\n".join(reports[own]) + "\n")
    print("\n\n".join(reports[own]))
    for path in args.write:
        replace_block(path, "\n\n".join(reports[path]), *blocks["report"])
    for path in args.table:
        replace_block(path, "\n\n".join(summaries), *blocks["table"])
