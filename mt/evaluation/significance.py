"""Is a difference in score a difference in systems? sacreBLEU's own paired tests, as its
command line runs them (`sacrebleu REF -i BASE OTHER... --paired-bs` and `--paired-ar`), over
clusters of a source sentence's translations when a row has several training seeds:

- paired bootstrap resampling (Koehn, 2004): 1000 resamples of the test sentences give each
  system's mean score with a 95% confidence interval, and a p-value against the baseline;
- paired approximate randomization (Riezler & Maxwell, 2005): 10,000 trials of swapping the
  two systems' outputs sentence by sentence give a second p-value.

A system is one or more seeds' translations of the same sentences. The k translations of one
source sentence are not k independent samples, so a resample draws source sentences, each
with all its seeds' translations (a cluster bootstrap), and a randomization trial swaps the
two systems' translations of a sentence for every seed at once. BLEU's and chrF's sufficient
statistics add up, so a cluster is its seeds' statistics summed, and the resampling is
sacreBLEU's, on those sums. With one seed this is exactly sacreBLEU's command line; the same
outputs repeated as k seeds give the same intervals and p-values as one seed.

Both resample test sentences only: they say nothing of what other training seeds would do.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.metrics.base import Metric
from sacrebleu.significance import _bootstrap_resample, _compute_p_value, estimate_ci

SEED = 12345  # sacreBLEU's default (SACREBLEU_SEED)
RESAMPLES = 1000  # paired bootstrap, sacreBLEU's and Koehn's
TRIALS = 10000  # approximate randomization, sacreBLEU's and MultEval's
METRICS = {"bleu": BLEU, "chrf": CHRF}  # our key -> sacreBLEU's metric, default settings


@dataclass
class Tested:
    """One system's scores, bootstrap mean and 95% half-interval, and p-values against the
    baseline (None for the baseline itself), per metric key (bleu, chrf)."""

    name: str
    score: dict[str, float]
    mean: dict[str, float]
    ci: dict[str, float]
    p_bootstrap: dict[str, float] | None
    p_randomization: dict[str, float] | None


@contextmanager
def sacrebleu_seed(seed: int) -> Iterator[None]:
    """sacreBLEU's bootstrap reads its numpy seed from SACREBLEU_SEED, as the command line."""
    before = os.environ.get("SACREBLEU_SEED")
    os.environ["SACREBLEU_SEED"] = str(seed)
    try:
        yield
    finally:
        if before is None:
            del os.environ["SACREBLEU_SEED"]
        else:
            os.environ["SACREBLEU_SEED"] = before


def cluster_statistics(metric: Metric, seeds: list[list[str]], references: list[str]):
    """Per source sentence, the metric's sufficient statistics summed over its seeds'
    translations: (sentences, statistics), one cluster a row."""
    per_seed = [metric._extract_corpus_statistics(hyps, [references]) for hyps in seeds]
    return np.sum([np.array(stats, dtype=np.int64) for stats in per_seed], axis=0)


def resampled(metric: Metric, stats, resamples: int, seed: int) -> np.ndarray:
    """sacreBLEU's bootstrap scores of the clusters; one seed draws the same sentences for
    every system, so two systems' resamples are paired."""
    with sacrebleu_seed(seed):
        _, scores = _bootstrap_resample(stats, metric, resamples)
    return np.array([s.score for s in scores])


def randomization_p(metric: Metric, base, other, trials: int, seed: int) -> float:
    """Approximate randomization as sacreBLEU's, each trial swapping whole clusters."""
    swap = np.random.default_rng(seed).integers(2, size=(trials, len(base)), dtype=bool)
    shuffled_a = swap @ base + ~swap @ other
    shuffled_b = ~swap @ base + swap @ other
    a = np.array([metric._compute_score_from_stats(x).score for x in shuffled_a])
    b = np.array([metric._compute_score_from_stats(x).score for x in shuffled_b])
    observed = abs(score_of(metric, base) - score_of(metric, other))
    return _compute_p_value(np.abs(a - b), observed)


def score_of(metric: Metric, stats) -> float:
    """The corpus score of clusters: every seed's translations together."""
    return metric._compute_score_from_stats(stats.sum(0)).score


def seed_count(systems: list[tuple[str, list[list[str]]]]) -> int:
    """The seeds every system has (pairing seed k of one with seed k of another)."""
    counts = {len(seeds) for _, seeds in systems}
    if len(counts) != 1:
        raise ValueError(f"systems with different numbers of seeds: {sorted(counts)}")
    return counts.pop()


def significance(
    systems: list[tuple[str, list[list[str]]]],
    references: list[str],
    seed: int = SEED,
    resamples: int = RESAMPLES,
    trials: int = TRIALS,
) -> list[Tested]:
    """Every system (its seeds' translations) against the first, the baseline."""
    seed_count(systems)
    scored = {key: {} for key in METRICS}
    for key, make in METRICS.items():
        metric = make()
        stats = [cluster_statistics(metric, seeds, references) for _, seeds in systems]
        boot = [resampled(metric, s, resamples, seed) for s in stats]
        for k, (s, b) in enumerate(zip(stats, boot, strict=True)):
            mean, ci = estimate_ci(b)
            found = {"score": score_of(metric, s), "mean": float(mean), "ci": float(ci)}
            if k:
                differences = np.abs(b - boot[0])
                observed = abs(found["score"] - score_of(metric, stats[0]))
                found["p_bootstrap"] = _compute_p_value(differences - differences.mean(), observed)
                found["p_randomization"] = randomization_p(metric, stats[0], s, trials, seed)
            scored[key][k] = found
    return [as_tested(name, k, systems, scored) for k, (name, _) in enumerate(systems)]


def as_tested(name: str, k: int, systems, scored: dict) -> Tested:
    """System k's Tested from the per-metric figures."""
    tests = ("p_bootstrap", "p_randomization")
    p = {what: {key: scored[key][k].get(what) for key in METRICS} for what in tests}
    if k and systems[k][1] == systems[0][1]:
        # sacreBLEU counts resampled differences strictly above the observed one (as
        # MultEval), so output identical to the baseline's, a difference of exactly 0,
        # gets its smallest p (0.001, 0.0001): there is no difference to test.
        p = dict.fromkeys(p, dict.fromkeys(METRICS, 1.0))
    return Tested(
        name=name,
        score={key: scored[key][k]["score"] for key in METRICS},
        mean={key: scored[key][k]["mean"] for key in METRICS},
        ci={key: scored[key][k]["ci"] for key in METRICS},
        p_bootstrap=p["p_bootstrap"] if k else None,
        p_randomization=p["p_randomization"] if k else None,
    )
