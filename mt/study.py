"""`python -m mt.study STUDY.yaml [--runs runs] [--data-root DATA] [--write FILE.md...]`:
train the study's runs that are missing (rows x seeds; unfinished ones resume, finished ones
are kept; --jobs N trains N at once), then its distilled corpora and the rows that train on
them; evaluate what its report needs (ensembles, long inputs; each kept once done), and write
the report: <runs>/<study>.md with its figures in <runs>/<study>/, and between the markers
`<!-- study: NAME -->` and `<!-- end of study: NAME -->` of each FILE.md."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch

from mt.common.errors import reported
from mt.common.files import check_markers, replace_block, write_text
from mt.decoding.significance import SEED
from mt.studies.evaluation import ensemble_file, ensemble_scores, long_input_scores
from mt.studies.grid import Run, distill, keep_outputs, study_runs, train_all
from mt.studies.pivots import evaluate_pivot
from mt.studies.report import (
    draw_figures,
    of_row,
    report_parts,
    sections,
    study_report,
    word_f_buckets,
)
from mt.studies.spec import Study, load_study, uses_distilled


def evaluated(study: Study, runs: list[Run], args: argparse.Namespace) -> dict:
    """The ensembles' and the long inputs' scores, per row name, and every run's word-F
    buckets by one count table."""
    found = {"ensembles": {}, "long_inputs": {}}
    found["word_f"] = word_f_buckets(study, runs, args.data_root)
    for row in study.rows:
        row_runs = of_row(runs, row)
        if study.ensemble and len(row_runs) > 1:
            found["ensembles"][row.name] = ensemble_scores(row_runs, args.runs, args.data_root)
        if study.long_inputs:
            found["long_inputs"][row.name] = [
                long_input_scores(run, study.long_inputs, args.data_root, study.segmented)
                for run in row_runs
            ]
    return found


def train_study(study: Study, runs: list[Run], args: argparse.Namespace) -> None:
    """The runs that are missing, the distilled corpora, the rows trained on them, then the
    pivot rows' translations."""
    first = [r for r in runs if not uses_distilled(r.row)]
    train_all(first, args.data_root, args.threads, args.jobs)
    students = [r for r in runs if uses_distilled(r.row)]
    # Students all trained (or their outputs kept without the corpora): nothing to distil.
    if any(not (r.directory / "results.json").is_file() for r in students):
        for corpus in study.distilled:
            teachers = [run for run in runs if run.row.name == corpus.teacher]
            distill(corpus, teachers, args.runs, args.data_root, args.threads)
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


def write_reports(study: Study, runs: list[Run], args: argparse.Namespace) -> None:
    """The report in <runs>/<study>.md and the --write pages, the summary in the --table
    pages, the figures, and with --outputs what the report was made from; a study of
    several test sets (directions) has a section, and a figures directory, per direction."""
    name, blocks = args.study.stem, markers(args.study.stem)
    own = args.runs / f"{name}.md"
    figures_root = args.figures or args.runs / name
    reports, summaries = {path: [] for path in [own, *args.write]}, []
    found = sections(study, runs)
    for section, section_runs in found:
        extra = evaluated(section, section_runs, args)
        parts = report_parts(section, section_runs, extra, args.data_root, args.seed)
        several = len(found) > 1
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


def bounded(low: int, high: int):
    """An argparse type: an integer in [low, high], else argparse's one-line error."""

    def parsed(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside {low}..{high}")
        return value

    parsed.__name__ = "integer"  # named in argparse's message
    return parsed


def override(text: str) -> str:
    """An argparse type: a Hydra override KEY=VALUE (or +KEY=VALUE, ~KEY)."""
    if "=" not in text and not text.startswith("~"):
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mt.study", description=__doc__)
    parser.add_argument("study", type=Path, help="a study file, e.g. studies/architectures.yaml")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="one run per row, seed")
    parser.add_argument("--data-root", help="data.root of every run (default: mt's own)")
    parser.add_argument(
        "--threads", type=bounded(1, 1024), default=2, help="CPU threads of each run"
    )
    parser.add_argument(
        "--jobs",
        type=bounded(1, 256),
        default=1,
        help="runs trained at once (a GPU: several), logs in <runs>",
    )
    parser.add_argument(
        "--set",
        type=override,
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="mt.train overrides added to every run's (trainer.compile=false); kept as theirs",
    )
    parser.add_argument(
        "--seed", type=bounded(0, 2**32 - 1), default=SEED, help="sacreBLEU's resampling seed"
    )
    parser.add_argument("--write", type=Path, nargs="*", default=[], help="put the report here")
    parser.add_argument(
        "--table", type=Path, nargs="*", default=[], help="put the summary table here (README)"
    )
    parser.add_argument("--figures", type=Path, help="the PNG figures' directory")
    parser.add_argument(
        "--outputs", type=Path, help="copy each run's results and test output here (no weights)"
    )
    args = parser.parse_args(argv)
    with reported():
        study = load_study(args.study)
        study = replace(study, overrides=[*study.overrides, *args.set])
        blocks = markers(args.study.stem)
        for path in args.write:  # before hours of training, not after
            check_markers(path, *blocks["report"])
        for path in args.table:
            check_markers(path, *blocks["table"])
        runs = study_runs(study, args.runs)
        train_study(study, runs, args)
        write_reports(study, runs, args)


if __name__ == "__main__":
    main()
