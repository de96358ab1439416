"""What a study's report needs beyond each run's own test: its rows' seeds decoded as one
ensemble, long inputs (consecutive test sentences joined k at a time), search errors. Each
result is kept in a JSON file once computed, so rerunning a study decodes nothing twice; and
the files a report is made from, copied without the weights (--outputs)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from mt.common.errors import MTError
from mt.common.files import sha256_file, write_text
from mt.config.checks import parse
from mt.config.store import from_plain_dict
from mt.data.directions import direction_config
from mt.data.readers import read_split, run_corpus, training_pairs
from mt.decoding.translator import Translator
from mt.evaluation.long_inputs import joined_scores
from mt.evaluation.results import write_results_file
from mt.evaluation.scores import corpus_scores, words
from mt.evaluation.search_errors import search_errors
from mt.studies.grid import Run


def made_from(runs: list[Run]) -> list[dict]:
    """What a kept result is computed from: each run by name, with the sha256 of its
    results.json (a run trained again writes another)."""
    return [
        {"run": run.directory.name, "results_sha256": sha256_file(run.directory / "results.json")}
        for run in runs
    ]


def read_kept(path: Path, inputs: list[dict]) -> dict | None:
    """path's JSON if it was made from these inputs; None when it is missing, or made from
    others (said in a line: it is computed again)."""
    if not path.is_file():
        return None
    try:
        kept_file = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MTError(f"{path}: not JSON ({e}); delete it to compute it again") from None
    if isinstance(kept_file, dict) and kept_file.get("made_from") == inputs:
        return kept_file
    print(f"{path}: made from other runs than these; computing it again", flush=True)
    return None


def write_json(path: Path, found: dict) -> None:
    """found as JSON at path (temporary name, renamed)."""
    write_text(path, json.dumps(found, indent=2) + "\n")


def kept(
    path: Path, compute: Callable[[], dict], inputs: list[dict], write: Callable = write_json
) -> dict:
    """path's JSON when it was made from these inputs, else compute() written there with
    them by write."""
    result = read_kept(path, inputs)
    if result is None:
        result = {**compute(), "made_from": inputs}
        write(path, result)
    return result


def test_split(run: Run, data_root: str | None) -> tuple[list[str], list[str]]:
    """The sources and references of the run's test split, of the row's direction for a
    multilingual run (under data_root if the corpus has moved)."""
    data = from_plain_dict(run.results["config"]).data
    if run.direction:
        data = direction_config(data, run.direction)
    return read_split(run_corpus(data, data_root), "test")


def target_word_counts(run: Run, data_root: str | None) -> Counter:
    """How often each word (13a) occurs in the run's training targets of its direction."""
    data = from_plain_dict(run.results["config"]).data
    data = run_corpus(direction_config(data, run.compared), data_root)
    counts: Counter = Counter()
    for _, target in training_pairs(data):
        counts.update(words(target))
    return counts


def target_language(run: Run) -> str | None:
    """The language a multilingual row's model is asked for (None: its only one)."""
    return parse(run.direction)[1] if run.direction else None


def ensemble_file(row_runs: list[Run], runs: Path) -> Path:
    """Where the ensemble of the row's seeds keeps its scores: <row>-ensemble-seeds1-2-3.json
    (<row>-ensemble-seeds1-2-3.de-en.json for a direction of a multilingual row)."""
    seeds = "-".join(str(run.seed) for run in row_runs)
    direction = f".{row_runs[0].direction}" if row_runs[0].direction else ""
    return runs / f"{row_runs[0].row.name}-ensemble-seeds{seeds}{direction}.json"


def ensemble_scores(row_runs: list[Run], runs: Path, data_root: str | None) -> dict:
    """Test BLEU and chrF of the row's seeds' final.pt as one ensemble (the first seed's decode
    settings), its hypotheses beside: <runs>/<row>-ensemble-seeds<a>-<b>...test.hyp."""
    stem = ensemble_file(row_runs, runs).with_suffix("")

    def compute() -> dict:
        sources, references = test_split(row_runs[0], data_root)
        translator = Translator.from_checkpoints([run.final for run in row_runs])
        hyps = translator.translate(sources, tgt_lang=target_language(row_runs[0]))
        write_text(stem.with_name(stem.name + ".test.hyp"), "".join(h + "\n" for h in hyps))
        scores = corpus_scores(hyps, references)
        return {"members": [str(run.final) for run in row_runs], **scores}

    return kept(ensemble_file(row_runs, runs), compute, made_from(row_runs), write_results_file)


def long_input_scores(
    run: Run, ks: list[int], data_root: str | None, segmented: bool = False
) -> list[dict]:
    """Per k: the test set's sentences joined k at a time, translated as single inputs by the
    run's final.pt and scored against the joined references (BLEU, chrF, output/reference
    length ratio), and with segmented the same of each input split into sentences first
    (mt.translate's way); kept in the run's long_inputs.json (long_inputs.<direction>.json)."""
    path = run.directory / long_inputs_file(run)
    inputs = made_from([run])
    record = read_kept(path, inputs)
    record = record or {"checkpoint": run.results["final"], "scores": [], "made_from": inputs}
    have = {entry["k"] for entry in record["scores"] if complete(entry, segmented, run)}
    missing = [k for k in ks if k not in have]
    record["scores"] = [entry for entry in record["scores"] if entry["k"] not in missing]
    if missing:
        sources, references = test_split(run, data_root)
        translator = Translator.from_checkpoint(run.final)
        for k in missing:
            tgt_lang = target_language(run)
            entry = joined_scores(translator, sources, references, k, tgt_lang, segmented)
            record["scores"].append(entry)
        record["scores"].sort(key=lambda entry: entry["k"])
        write_json(path, record)
    return [entry for entry in record["scores"] if entry["k"] in ks]


def search_error_scores(run: Run, beams: list[int], data_root: str | None) -> dict:
    """Per beam size, the run's test outputs by its final.pt told apart as the reference, a
    search error or a model error, each sentence's two scores beside; kept in the run's
    search_errors.json (search_errors.<direction>.json)."""

    def compute() -> dict:
        sources, references = test_split(run, data_root)
        translator = Translator.from_checkpoint(run.final)
        decode, tgt_lang = translator.config.decode, target_language(run)
        found = search_errors(translator, sources, references, decode, beams, tgt_lang)
        return {"checkpoint": run.results["final"], "beams": found}

    path = run.directory / per_direction(run, "search_errors")
    return kept(path, compute, [*made_from([run]), {"beams": beams}])


def complete(entry: dict, segmented: bool, run: Run) -> bool:
    """Whether a kept long-input entry has what the report needs: its segmented scores if
    asked for, and its outputs (for intervals) where the run's checkpoint can make them."""
    if segmented and "segmented" not in entry:
        return False
    ways = [entry, entry["segmented"]] if segmented else [entry]
    return all("hyps" in way for way in ways) or not run.final.is_file()


# What a run's report needs, without its checkpoints: a few hundred KB for a whole study.
KEPT_FILES = ("config.yaml", "results.json")


def per_direction(run: Run, name: str) -> str:
    """A kept file of the run's, per compared direction of a multilingual run."""
    return f"{name}.{run.direction}.json" if run.direction else f"{name}.json"


def long_inputs_file(run: Run) -> str:
    """The run's long-input scores."""
    return per_direction(run, "long_inputs")


def keep_outputs(runs: list[Run], study_files: list[Path], outputs: Path) -> None:
    """Copy each run's config, results and test output, and the study's own result files
    (ensembles), into outputs/, where the study finds every run finished: its report can be
    recomputed from there without the checkpoints."""
    for run in runs:
        suffix = run.direction or run.results["config"]["data"]["tgt_lang"]
        searched = per_direction(run, "search_errors")
        for name in (*KEPT_FILES, long_inputs_file(run), searched, f"test.hyp.{suffix}"):
            copy_text(run.directory / name, outputs / run.directory.name / name)
    for path in study_files:
        copy_text(path, outputs / path.name)


def copy_text(source: Path, target: Path) -> None:
    if source.is_file():
        write_text(target, source.read_text(encoding="utf-8"))
