"""Runs side by side (mt.compare, and the studies' reports): every results.json as one row of
a markdown table, and, on request, whether their test scores differ significantly."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sacrebleu import __version__ as sacrebleu_version
from sacrebleu.metrics import CHRF

from mt.common.errors import MTError
from mt.config.checks import parse
from mt.config.store import from_plain_dict
from mt.data.directions import direction_config
from mt.data.readers import iter_lines, read_split, run_corpus
from mt.evaluation.results import ENSEMBLE_FILES, read_results
from mt.evaluation.significance import RESAMPLES, TRIALS, Tested

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
    "started from",
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


def find_ensembles(directories: list[str]) -> list[Path]:
    """The ensembles' score files under the directories (a study's runs folder)."""
    return sorted(path for name in directories for path in Path(name).rglob(ENSEMBLE_FILES))


def ensemble_row(path: Path) -> list[str]:
    """An ensemble's test scores as a row: no training of its own, so the rest is blank."""
    r = read_results(path)
    cells = [str(path.with_suffix("")), f"ensemble of {len(r['members'])}", "", ""]
    cells += [f"{r[key]:.2f}" if key in r else "" for key in ("bleu", "chrf", "bleu_lc")]
    return cells + [""] * (len(COLUMNS) - len(cells))


def row(path: Path) -> list[str]:
    try:
        r = read_results(path)
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
            clock(r["train_seconds"]),
            "" if r["tgt_tokens_per_sec"] is None else f"{r['tgt_tokens_per_sec']:.0f}",
            r.get("hardware", r["device"]),
            (r.get("commit") or "")[:10],  # short, with its -dirty mark cut; see results.json
            started_from(r.get("parent")),
        ]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise MTError(f"{path}: not an mt results file ({e!r})") from None


def clock(seconds: float) -> str:
    """h:mm:ss."""
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def started_from(parent: dict | None) -> str:
    """A run started from another (trainer.init_from): the parent's run and file, and the
    first digits of its sha256 (results.json has the whole path and digest)."""
    if not parent:
        return ""
    path = Path(parent["path"])
    return f"{path.parent.parent.name}/{path.name} ({parent['sha256'][:8]})"


def direction_rows(path: Path) -> list[list[str]]:
    """A multilingual run's test scores per direction, one row each under the run's own
    (none for a single-direction run), labelled "de-fr (zero-shot, 35.0% in fr)": a direction
    it never saw, and the share of its output that reads as the language asked for."""
    test = read_results(path)["test"]
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
    """The rows under COLUMNS; "started from" only when a run was started from another."""
    columns = list(COLUMNS)
    if not any(cells[-1] for cells in rows):
        columns, rows = columns[:-1], [cells[:-1] for cells in rows]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


@dataclass
class TestSet:
    """The test split several runs were scored on, and each run's output (baseline first)."""

    sources: list[str]
    references: list[str]
    systems: list[tuple[str, list[str]]]  # (run directory, test hypotheses)


def test_lines(
    path: Path, data_root: str | None, direction: str | None = None
) -> tuple[list[str], list[str], list[str]]:
    """A run's test hypotheses (test.hyp.<tgt_lang> beside its results.json; a multilingual
    run's test.hyp.<direction> for the direction named), and the sources and references of
    that test split, read from its corpus (under data_root if it has moved)."""
    try:
        results = read_results(path)
        config = from_plain_dict(results["config"])
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise MTError(f"{path}: not an mt results file ({e!r})") from None
    data, suffix = config.data, config.data.tgt_lang
    if data.directions:
        tested = list(results["test"].get("directions", {}))
        if direction not in tested:
            raise MTError(
                f"{path.parent}: a multilingual run; name one of its directions {tested} "
                "(mt.compare --direction, or a study row's direction)"
            )
        data, suffix = direction_config(data, direction), direction
    elif direction not in (None, f"{data.src_lang}-{data.tgt_lang}"):
        raise MTError(f"{path.parent}: a {data.src_lang}-{data.tgt_lang} run, not {direction}")
    hyps_path = path.parent / f"test.hyp.{suffix}"
    if not hyps_path.is_file():
        raise MTError(f"{hyps_path}: missing (the run's test hypotheses, written as it ends)")
    sources, references = read_split(run_corpus(data, data_root), "test")
    return list(iter_lines(hyps_path)), sources, references


def same_test_set(
    paths: list[Path],
    baseline: int,
    data_root: str | None,
    directions: list[str | None] | None = None,
) -> TestSet:
    """The runs' common test set, paths[baseline]'s output first (with directions: each run's
    direction of that name); a run scored against other references, or with another number
    of hypotheses, is refused by name."""
    directions = directions or [None] * len(paths)
    order = [baseline] + [k for k in range(len(paths)) if k != baseline]
    found: TestSet | None = None
    for k in order:
        hyps, sources, refs = test_lines(paths[k], data_root, directions[k])
        if found is not None and refs != found.references:
            raise MTError(
                f"{paths[k].parent}: scored against other references than the baseline "
                f"{paths[baseline].parent}; comparing them needs the same test set"
            )
        if len(hyps) != len(refs):
            raise MTError(f"{paths[k].parent}: {len(hyps)} hypotheses, {len(refs)} references")
        found = found or TestSet(sources, refs, [])
        found.systems.append((str(paths[k].parent), hyps))
    return found


def largest_differences(test_set: TestSet, count: int) -> str:
    """Markdown: for each run against the baseline, the count test sentences whose sentence
    chrF differs most, with source, reference and both outputs."""
    chrf = CHRF()
    (base_name, base), *others = test_set.systems
    refs = test_set.references
    base_scores = [chrf.sentence_score(h, [r]).score for h, r in zip(base, refs, strict=True)]
    sections = []
    for name, hyps in others:
        scores = [chrf.sentence_score(h, [r]).score for h, r in zip(hyps, refs, strict=True)]
        order = sorted(range(len(refs)), key=lambda i: -abs(scores[i] - base_scores[i]))
        lines = [f"{name} against {base_name}: the {count} test sentences whose chrF differs most"]
        lines += [
            "",
            "| chrF base / run | source | reference | baseline | run |",
            "|---|---|---|---|---|",
        ]
        for i in order[:count]:
            cells = [f"{base_scores[i]:.1f} / {scores[i]:.1f}", test_set.sources[i], refs[i]]
            cells += [base[i], hyps[i]]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        sections.append("\n".join(lines))
    return "\n\n".join(sections)


SIGNIFICANCE_COLUMNS = ("run", "test BLEU (95% CI)", "test chrF (95% CI)", "p BLEU", "p chrF")


def significance_table(
    tested: list[Tested], sentences: int, seed: int, seeds: int = 1, how: str = "one run per row"
) -> str:
    """Markdown: score (bootstrap mean ± 95% half-interval) and p-values (paired bootstrap /
    approximate randomization) per run, the baseline first; then how they were computed."""
    lines = ["| " + " | ".join(SIGNIFICANCE_COLUMNS) + " |", "|" + "---|" * 5]
    for t in tested:
        cells = [t.name + (" (baseline)" if t is tested[0] else "")]
        cells += [f"{t.score[m]:.2f} ({t.mean[m]:.2f} ± {t.ci[m]:.2f})" for m in ("bleu", "chrf")]
        for m in ("bleu", "chrf"):
            p = t.p_bootstrap
            cells.append("" if p is None else f"{p[m]:.4f} / {t.p_randomization[m]:.4f}")
        lines.append("| " + " | ".join(cells) + " |")
    drawn = f"{sentences} test sentences" + (f" × {seeds} seeds" if seeds > 1 else "")
    lines.append(
        f"\np: paired bootstrap ({RESAMPLES} resamples) / approximate randomization ({TRIALS} "
        f"trials) against the baseline; sacreBLEU {sacrebleu_version}, seed {seed}, {drawn}, "
        f"{how}. Only test sentences are resampled: the intervals do not cover what other "
        "training seeds would give."
    )
    return "\n".join(lines)


def baseline_index(paths: list[Path], baseline: str | None) -> int:
    """Which of the runs (results.json paths) the baseline run directory names (None: 0)."""
    if baseline is None:
        return 0
    wanted = Path(baseline).resolve()
    for k, path in enumerate(paths):
        if path.parent.resolve() == wanted:
            return k
    raise MTError(f"--baseline {baseline}: not one of the runs compared")
