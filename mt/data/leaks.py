"""Leak audit: how many held-out (valid, test) pairs, and sources alone, also occur in the
training data, exactly and after normalisation (case, punctuation and whitespace ignored). A
test set that overlaps training measures memory, not translation; the audit lets a reader rule
that out. Memory is bounded by the held-out splits: the training corpora are streamed past
their sentences once. (The subword model is trained on the training split alone:
mt.data.cache.train_tokenizer, so it cannot leak held-out text either.)
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from mt.config.schema import DataConfig
from mt.data.readers import iter_split, split_sources


def normalised(text: str) -> str:
    """text lowercased, without punctuation, its whitespace collapsed."""
    kept = "".join(ch for ch in text.lower() if not unicodedata.category(ch).startswith("P"))
    return " ".join(kept.split())


def overlap(train_pairs: Iterable[tuple[str, str]], held_out: list[tuple[str, str]]) -> dict:
    """Counts of held_out's pairs and sources that occur among train_pairs, exactly and
    normalised, and held_out's size."""
    keys = {
        "pairs": lambda s, t: (s, t),
        "sources": lambda s, t: s,
        "pairs_normalised": lambda s, t: (normalised(s), normalised(t)),
        "sources_normalised": lambda s, t: normalised(s),
    }
    wanted = {name: {key(s, t) for s, t in held_out} for name, key in keys.items()}
    found: dict[str, set] = {name: set() for name in keys}
    for s, t in train_pairs:
        for name, key in keys.items():
            value = key(s, t)
            if value in wanted[name]:
                found[name].add(value)
    counts = {name: sum(keys[name](s, t) in found[name] for s, t in held_out) for name in keys}
    return {"sentences": len(held_out), **counts}


def leak_audit(data: DataConfig, held_out: dict[str, list[tuple[str, str]]]) -> dict:
    """Per held-out split (valid, test): its overlap with every training corpus of data."""

    def train_pairs():
        for source in split_sources(data, "train"):
            yield from iter_split(source, "train")

    return {split: overlap(train_pairs(), pairs) for split, pairs in held_out.items()}
