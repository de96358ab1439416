"""A pivot row: the test and valid sources translated by its legs' models one after another
(de->en, then en->fr), seed by seed, and scored as a run of the direction they span. Its
results.json has what a trained run's report needs, so the report treats it as one."""

from __future__ import annotations

from itertools import pairwise

from mt.common.errors import MTError
from mt.common.files import write_text
from mt.common.runtime import source_commit
from mt.config.checks import parse
from mt.config.store import from_plain_dict, to_plain_dict
from mt.data.directions import direction_config
from mt.data.readers import read_split, run_corpus
from mt.decoding.translator import Translator
from mt.evaluation.results import write_results_file
from mt.evaluation.scores import breakdowns, corpus_scores
from mt.studies.grid import Run, views
from mt.studies.kept import made_from, read_kept, target_language, target_word_counts


def legs_of(run: Run, runs: list[Run]) -> list[Run]:
    """The runs, of the pivot run's seed, whose models translate one after another."""
    legs = []
    for name in run.row.pivot:
        named = [
            view for r in runs if r.row.name == name and r.seed == run.seed for view in views(r)
        ]
        if len(named) != 1:
            raise MTError(
                f"rows: {run.row.name}: pivot: {name} needs seed {run.seed} of one direction"
            )
        legs.extend(named)
    return legs


def pivot_direction(run: Run, legs: list[Run]) -> str:
    """The direction the legs span, refused unless each leg translates the one before's output."""
    chain = [parse(leg.compared) for leg in legs]
    for (_, into), (source, _) in pairwise(chain):
        if into != source:
            names = [f"{leg.row.name}: {leg.compared}" for leg in legs]
            raise MTError(f"rows: {run.row.name}: pivot: {names} do not chain")
    return f"{chain[0][0]}-{chain[-1][1]}"


def evaluate_pivot(run: Run, runs: list[Run], data_root: str | None) -> None:
    """The pivot run's results.json and hypotheses, once (one made from these legs' results
    is kept; one made from others is made again)."""
    legs = legs_of(run, runs)
    if read_kept(run.directory / "results.json", made_from(legs)) is not None:
        return
    config = from_plain_dict(legs[-1].results["config"])
    config.data = direction_config(config.data, pivot_direction(run, legs))
    config.data = run_corpus(config.data, data_root)
    print(f"{run.directory}: {' -> '.join(str(leg.final) for leg in legs)}", flush=True)
    translators = [Translator.from_checkpoint(leg.final) for leg in legs]
    results = {"config": to_plain_dict(config), "pivot": [str(leg.directory) for leg in legs]}
    results["model"] = " → ".join(leg.results["model"] for leg in legs)
    for split in ("valid", "test"):
        sources, references = read_split(config.data, split)
        hyps = sources
        for leg, translator in zip(legs, translators, strict=True):
            hyps = translator.translate(hyps, tgt_lang=target_language(leg))
        hyp_file = run.directory / f"{split}.hyp.{config.data.tgt_lang}"
        write_text(hyp_file, "".join(h + "\n" for h in hyps))
        results[split] = corpus_scores(hyps, references)
    # sources, hyps and references are test's here, the loop's last split.
    counts = target_word_counts(legs[-1], data_root)  # the words the last leg was taught
    results["test"].update(breakdowns(sources, hyps, references, counts))
    results.update(chained_record(legs), made_from=made_from(legs))
    write_results_file(run.directory, results)


def chained_record(legs: list[Run]) -> dict:
    """What the report says of a run: the legs' parameters, steps and training time together,
    where the first trained, and the commit that chained them."""
    first = legs[0].results
    return {
        "params": sum(leg.results["params"] for leg in legs),
        "steps": sum(leg.results["steps"] for leg in legs),
        "train_seconds": sum(leg.results["train_seconds"] for leg in legs),
        "tgt_tokens_per_sec": None,  # two models' speeds make no one speed
        "final": None,
        "commit": source_commit(),
        **{key: first[key] for key in ("device", "hardware", "precision") if key in first},
    }
