"""Leak audit: how many held-out (valid, test) pairs, and sources alone, also occur in the
training data, exactly and after normalisation (case, punctuation and whitespace ignored). A
test set that overlaps training measures memory, not translation; the audit lets a reader rule
that out. Memory is bounded by the held-out splits: the training corpora are streamed past
their sentences once. (The subword model is trained on the training split alone:
mt.data.cache.train_tokenizer, so it cannot leak held-out text either.)
"""

from __future__ import annotations

import functools
import sys
import unicodedata
from collections.abc import Iterable

from mt.config.schema import DataConfig
from mt.data.readers import iter_split, split_sources


@functools.cache
def punctuation() -> dict[int, None]:
    """str.translate's table deleting every Unicode punctuation character (made once)."""
    return {
        code: None
        for code in range(sys.maxunicode + 1)
        if unicodedata.category(chr(code)).startswith("P")
    }


def normalised(text: str) -> str:
    """text lowercased, without punctuation, its whitespace collapsed."""
    return " ".join(text.lower().translate(punctuation()).split())


def keys(source: str, target: str) -> dict:
    """What a pair is matched by: itself, its source, and both normalised."""
    source_normalised = normalised(source)
    return {
        "pairs": (source, target),
        "sources": source,
        "pairs_normalised": (source_normalised, normalised(target)),
        "sources_normalised": source_normalised,
    }


def overlap(train_pairs: Iterable[tuple[str, str]], held_out: list[tuple[str, str]]) -> dict:
    """Counts of held_out's pairs and sources that occur among train_pairs, exactly and
    normalised, and held_out's size."""
    held_keys = [keys(s, t) for s, t in held_out]
    names = ("pairs", "sources", "pairs_normalised", "sources_normalised")
    wanted = {name: {k[name] for k in held_keys} for name in names}
    found: dict[str, set] = {name: set() for name in wanted}
    for s, t in train_pairs:
        for name, value in keys(s, t).items():
            if value in wanted[name]:
                found[name].add(value)
    counts = {name: sum(k[name] in found[name] for k in held_keys) for name in wanted}
    return {"sentences": len(held_out), **counts}


def leak_audit(data: DataConfig, held_out: dict[str, list[tuple[str, str]]]) -> dict:
    """Per held-out split (valid, test): its overlap with every training corpus of data."""

    def train_pairs():
        for source in split_sources(data, "train"):
            yield from iter_split(source, "train")

    return {split: overlap(train_pairs(), pairs) for split, pairs in held_out.items()}
