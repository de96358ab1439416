"""argparse types of the commands that take plain arguments (mt.study, mt.compare): each
refuses a bad value in argparse's one line."""

from __future__ import annotations

import argparse


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
