"""Multilingual runs: several translation directions of one multi-parallel corpus in one
model, each source sentence tagged with the language to produce (as in Johnson et al. 2017,
"Google's Multilingual NMT System"). A tag is a sentencepiece control piece, `<2en>`: the
tokenizer adds it by id, no input text can produce it, and decoding never prints it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from mt.config.checks import parse
from mt.config.schema import DataConfig


def tag(lang: str) -> str:
    """The control piece that asks for lang: "en" -> "<2en>"."""
    return f"<2{lang}>"


def source_marks(data: DataConfig) -> int:
    """Pieces before each source sentence's own: a multilingual run's target tag, or none."""
    return 1 if data.directions else 0


def source_languages(data: DataConfig) -> list[str]:
    """The languages a run's model reads, in the order of data.directions."""
    return list(dict.fromkeys(parse(d)[0] for d in data.directions))


def target_languages(data: DataConfig) -> list[str]:
    """The languages a run's model produces, in the order of data.directions."""
    return list(dict.fromkeys(parse(d)[1] for d in data.directions))


def languages(data: DataConfig) -> list[str]:
    """Every language of the run, sources and targets, in order of first appearance."""
    return list(dict.fromkeys(lang for d in data.directions for lang in parse(d)))


def zero_shot(data: DataConfig) -> list[str]:
    """Directions the model was not trained on but can be asked for: from a source language
    to a target language of other directions."""
    return [
        f"{s}-{t}"
        for s in source_languages(data)
        for t in target_languages(data)
        if s != t and f"{s}-{t}" not in data.directions
    ]


def direction_config(data: DataConfig, direction: str) -> DataConfig:
    """data as the single direction it names."""
    src, tgt = parse(direction)
    return replace(data, src_lang=src, tgt_lang=tgt, directions=[], direction_weights=[])


def sampling_weights(data: DataConfig, sizes: np.ndarray) -> list[float]:
    """Times per epoch each direction's pairs are seen: data.direction_weights, else the
    temperature's: direction k's share of an epoch is size_k^(1/T) / sum of size^(1/T), and
    the epoch keeps the corpus's total size (T = 1: every pair once)."""
    if data.direction_weights:
        return list(data.direction_weights)
    sizes = np.asarray(sizes, dtype=np.float64)
    shares = sizes ** (1 / data.temperature)
    shares /= shares.sum()
    return (shares * sizes.sum() / np.maximum(sizes, 1)).tolist()


def epoch_weights(data: DataConfig, sources: np.ndarray) -> list[float] | None:
    """Times per epoch each training corpus is seen: the directions' sampling weights, the
    weights of data.train_sources, or None (every pair once)."""
    if data.directions:
        return sampling_weights(data, np.bincount(sources, minlength=len(data.directions)))
    return [source.weight for source in data.train_sources] or None
