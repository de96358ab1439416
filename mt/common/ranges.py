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
