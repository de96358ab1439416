"""Is a difference in score a difference in systems? sacreBLEU's own paired tests, run as its
command line runs them (`sacrebleu REF -i BASE OTHER... --paired-bs` and `--paired-ar`), so
the figures equal its output for the same files and seed:

- paired bootstrap resampling (Koehn, 2004): 1000 resamples of the test sentences give each
  system's mean score with a 95% confidence interval, and a p-value against the baseline;
- paired approximate randomization (Riezler & Maxwell, 2005): 10,000 trials of swapping the
  two systems' outputs sentence by sentence give a second p-value.

Both resample test sentences only: they say nothing of what another training seed would do.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.significance import PairedTest

SEED = 12345  # sacreBLEU's default (SACREBLEU_SEED)
RESAMPLES = 1000  # paired bootstrap, sacreBLEU's and Koehn's
TRIALS = 10000  # approximate randomization, sacreBLEU's and MultEval's
METRICS = {"bleu": "BLEU", "chrf": "chrF2"}  # our key -> sacreBLEU's name of the score


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
    """PairedTest reads its numpy seed from SACREBLEU_SEED, as the command line does."""
    before = os.environ.get("SACREBLEU_SEED")
    os.environ["SACREBLEU_SEED"] = str(seed)
    try:
        yield
    finally:
        if before is None:
            del os.environ["SACREBLEU_SEED"]
        else:
            os.environ["SACREBLEU_SEED"] = before


def paired_test(systems, references: list[str], kind: str, samples: int) -> dict:
    """sacreBLEU's table for one test (kind "bs" or "ar"): metric name -> Result per system."""
    metrics = {name: (BLEU() if key == "bleu" else CHRF()) for key, name in METRICS.items()}
    _, table = PairedTest(systems, metrics, [references], kind, samples)()
    return table


def significance(
    systems: list[tuple[str, list[str]]],
    references: list[str],
    seed: int = SEED,
    resamples: int = RESAMPLES,
    trials: int = TRIALS,
) -> list[Tested]:
    """Every system against the first (the baseline), on the same references."""
    with sacrebleu_seed(seed):
        bootstrap = paired_test(systems, references, "bs", resamples)
        randomized = paired_test(systems, references, "ar", trials) if len(systems) > 1 else {}
    tested = []
    for k, (name, hyps) in enumerate(systems):
        boot = {key: bootstrap[metric][k] for key, metric in METRICS.items()}
        p_bootstrap = {key: r.p_value for key, r in boot.items()}
        p_randomization = {key: randomized[m][k].p_value for key, m in METRICS.items() if k}
        if k and hyps == systems[0][1]:
            # sacreBLEU counts resampled differences strictly above the observed one (as
            # MultEval), so output identical to the baseline's, a difference of exactly 0,
            # gets its smallest p (0.001, 0.0001): there is no difference to test.
            p_bootstrap = p_randomization = dict.fromkeys(METRICS, 1.0)
        tested.append(
            Tested(
                name=name,
                score={key: float(r.score) for key, r in boot.items()},
                mean={key: float(r.mean) for key, r in boot.items()},
                ci={key: float(r.ci) for key, r in boot.items()},
                p_bootstrap=p_bootstrap if k else None,
                p_randomization=p_randomization if k else None,
            )
        )
    return tested
