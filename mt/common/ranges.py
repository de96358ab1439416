"""Numeric ranges of config fields: each schema lists its own in a RANGES class variable, so a
rule can only name a field the schema has (check_ranges fails on any other name)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mt.common.errors import MTError

Rule = tuple[Callable[[Any], bool], str]


def at_least(low: float) -> Rule:
    return (lambda value: value >= low), f"must be ≥ {low}"


def above(low: float) -> Rule:
    return (lambda value: value > low), f"must be > {low}"


FRACTION: Rule = (lambda value: 0 <= value < 1), "must be in [0, 1)"


def check_ranges(values: Any, prefix: str) -> None:
    """Refuse a value outside its schema's RANGES, naming the key: `trainer.warmup_steps=0:
    must be ≥ 1`. None, where a field allows it, means "no limit" and is not checked."""
    for name, (allowed, rule) in getattr(type(values), "RANGES", {}).items():
        value = getattr(values, name)  # no default: a rule naming no field fails loudly
        if value is not None and not allowed(value):
            raise MTError(f"{prefix}{name}={value}: {rule}")
