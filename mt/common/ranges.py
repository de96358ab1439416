"""Numeric ranges of config fields: each schema lists its own in a RANGES class variable, so a
rule can only name a field the schema has (check_ranges fails on any other name)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from mt.common.errors import MTError

Rule = tuple[Callable[[Any], bool], str]


def at_least(low: float) -> Rule:
    return (lambda value: value >= low), f"must be ≥ {low}"


def above(low: float) -> Rule:
    return (lambda value: value > low), f"must be > {low}"


def within(low: float, high: float) -> Rule:
    return (lambda value: low <= value <= high), f"must be in [{low}, {high}]"


# Upper bounds on sizes: each is past anything a model or run here needs, and far below what
# would take a machine's memory or an overflow before any check could see it.
WIDTH: Rule = within(1, 16384)  # d_model, hidden sizes: GPT-3's is 12288
FF_WIDTH: Rule = within(1, 65536)  # feed-forward width: 4 x 16384
DEPTH: Rule = within(1, 256)  # layers, heads
POSITIONS: Rule = within(1, 65536)  # a sequence's tokens (positions table, data.max_len)
TOKENS: Rule = within(1, 2**20)  # tokens in one batch
BEAM: Rule = within(1, 1000)  # hypotheses kept, or returned, per sentence
VOCABULARY: Rule = within(5, 1_000_000)  # the 4 special pieces and at least one more
STEPS: Rule = within(1, 10**9)  # steps, epochs, intervals: years of training at 30 steps/s
COUNT: Rule = within(0, 10**6)  # things kept or shown: checkpoints, samples, maps
PROCESSES: Rule = within(1, 1024)  # threads, processes, workers
FRACTION: Rule = (lambda value: 0 <= value < 1), "must be in [0, 1)"
# torch's generators take a signed 64-bit seed, numpy's a non-negative one.
SEED: Rule = within(0, 2**63 - 1)
# Times per epoch a corpus or direction is seen: an epoch holds weight x its pairs, so a
# huge weight is a huge epoch (and nan or inf none at all).
EPOCH_WEIGHT: Rule = (lambda value: 0 < value <= 1000), "must be in (0, 1000]"


def check_ranges(values: Any, prefix: str) -> None:
    """Refuse a value outside its schema's RANGES, or an infinite one that a one-sided rule
    lets through, naming the key: `trainer.warmup_steps=0: must be ≥ 1`, `trainer.lr=inf: must
    be a finite number`. None, where a field allows it, means "no limit" and is not checked."""
    for name, (allowed, rule) in getattr(type(values), "RANGES", {}).items():
        value = getattr(values, name)  # no default: a rule naming no field fails loudly
        if value is None:
            continue
        if not allowed(value):  # nan fails every rule: no comparison with it holds
            raise MTError(f"{prefix}{name}={value}: {rule}")
        if isinstance(value, float) and not math.isfinite(value):
            raise MTError(f"{prefix}{name}={value}: must be a finite number")
