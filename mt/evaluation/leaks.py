"""Leak audit: how many held-out (valid, test) pairs, and sources alone, also occur in the
training data, exactly and after normalisation (case, punctuation and whitespace ignored). A
test set that overlaps training measures memory, not translation; the audit lets a reader rule
that out. Memory is bounded by the held-out splits: the training corpora are streamed past
their sentences once
(mt.data.readers.training_pairs). (The subword model is trained on the training split alone:
mt.data.cache.train_tokenizer, so it cannot leak held-out text either.)
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable


class PunctuationTable(dict):
    """str.translate's table deleting every Unicode punctuation character, filled with the
    characters the text holds as they come: the whole of Unicode took 0.3 s to classify at
    every training run's start."""

    def __missing__(self, code: int) -> int | None:
        self[code] = None if unicodedata.category(chr(code)).startswith("P") else code
        return self[code]


PUNCTUATION = PunctuationTable()


def normalised(text: str) -> str:
    """text lowercased, without punctuation, its whitespace collapsed."""
    return " ".join(text.lower().translate(PUNCTUATION).split())


def keys(source: str, target: str) -> dict:
    """What a pair is matched by: itself, its source, and both normalised."""
    source_normalised = normalised(source)
    return {
        "pairs": (source, target),
        "sources": source,
        "pairs_normalised": (source_normalised, normalised(target)),
        "sources_normalised": source_normalised,
    }


MATCHES = ("pairs", "sources", "pairs_normalised", "sources_normalised")  # keys()'s


def leak_audit(
    train_pairs: Iterable[tuple[str, str]], held_out: dict[str, list[tuple[str, str]]]
) -> dict:
    """Per held-out split (valid, test): its size and how many of its pairs and sources occur
    among the training pairs, exactly and normalised; the training pairs are read once."""
    held_keys = {split: [keys(s, t) for s, t in pairs] for split, pairs in held_out.items()}
    wanted = {name: {k[name] for ks in held_keys.values() for k in ks} for name in MATCHES}
    found: dict[str, set] = {name: set() for name in MATCHES}
    for s, t in train_pairs:
        for name, value in keys(s, t).items():
            if value in wanted[name]:
                found[name].add(value)
    return {
        split: {
            "sentences": len(ks),
            **{name: sum(k[name] in found[name] for k in ks) for name in MATCHES},
        }
        for split, ks in held_keys.items()
    }
