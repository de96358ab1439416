"""Translating text as people paste it: a line of several sentences (a paragraph) is split
into sentences by sentencex (a maintained rule-based segmenter for ~300 languages), every
sentence of every line is translated in one stream of batches, and each line is joined again
with the spacing it had. Multi30k's models never saw two sentences in one input: given a
paragraph as one input they drop most of it (docs/results.md, "Long inputs").

A sentence too long for the model (past its positions, or MAX_SOURCE_TOKENS) is split too,
at the punctuation nearest its middle, else at the space nearest it, until each piece fits,
with one warning naming the line: never cut. Segmentation off (a file that is already one
sentence per line) translates each line as one input, as before, long lines still split.
"""

from __future__ import annotations

import locale
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import sentencex

from mt.config.schema import DecodeConfig
from mt.decoding.translator import MAX_SOURCE_TOKENS, Translator

log = logging.getLogger("mt")

# Where a sentence without a boundary the segmenter finds is best split: after a clause's
# punctuation, else at a space.
CLAUSE_END = re.compile(r"[,;:)\]–—]\s+")
SPACE = re.compile(r"\s+")


@dataclass
class Piece:
    """What one input line becomes: the text to translate (None: kept as it is, e.g. spacing)
    and the whitespace around it, so the translations join into the line's shape."""

    before: str
    text: str | None
    after: str


# The languages Python's locale table names (ISO 639 codes): sentencex has no list of its own
# to ask, and gives a code it does not know its default, English, rules.
LANGUAGES = {alias.split(".")[0].split("_")[0].lower() for alias in locale.locale_alias.values()}


@cache
def check_language(lang: str) -> None:
    """Warn, once per language, when lang names no language the segmenter could know."""
    primary = lang.replace("_", "-").split("-")[0].lower()
    if primary not in LANGUAGES:
        log.warning(
            "segmenting: %r is not a language code (ISO 639, e.g. de); "
            "sentences are split by sentencex's fallback, its English rules",
            lang,
        )


def sentences(line: str, lang: str) -> list[str]:
    """The line's sentences, each with the whitespace around it ("".join gives line)."""
    return list(sentencex.segment(lang, line))


def shaped(chunk: str) -> Piece:
    """A chunk of a line as its leading whitespace, its text and its trailing whitespace."""
    text = chunk.strip()
    if not text:
        return Piece(chunk, None, "")
    start = chunk.index(text)
    return Piece(chunk[:start], text, chunk[start + len(text) :])


def halves(text: str) -> tuple[str, str]:
    """text split in two at the clause boundary nearest its middle, else the space nearest
    it, else its middle character; the first half keeps the whitespace between them."""
    middle = len(text) // 2
    for pattern in (CLAUSE_END, SPACE):
        cuts = [m.end() for m in pattern.finditer(text) if 0 < m.end() < len(text)]
        if cuts:
            cut = min(cuts, key=lambda end: abs(end - middle))
            return text[:cut], text[cut:]
    return text[:middle], text[middle:]


def fitted(text: str, fits: Callable[[str], bool]) -> list[str]:
    """text as pieces that each fit (fits(piece)), split by halves; each keeps its trailing
    whitespace, so "".join gives text back."""
    if fits(text) or len(text) < 2:
        return [text]
    first, second = halves(text)
    return fitted(first, fits) + fitted(second, fits)


@dataclass
class Documents:
    """The lines' pieces and, per line, how many pieces it has."""

    pieces: list[Piece]
    counts: list[int]

    def joined(self, translations: list[str]) -> list[str]:
        """Each line again: its pieces' translations between their original spacing."""
        return [spans(pairs)[0] for pairs in self.per_line(translations)]

    def texts(self) -> list[str]:
        return [piece.text for piece in self.pieces if piece.text is not None]

    def per_line(self, results: list) -> list[list[tuple[Piece, object]]]:
        """Per line, its pieces with their results (one per text, in texts()'s order; None
        for a piece of spacing)."""
        found, pieces = iter(results), iter(self.pieces)
        return [
            [(p, None if p.text is None else next(found)) for p in (next(pieces) for _ in range(n))]
            for n in self.counts
        ]


def spans(pairs: list[tuple[Piece, str | None]]) -> tuple[str, list[dict]]:
    """One line's pieces with their translations (None: spacing) as the joined translation
    and, per translated piece, its source and target character offsets [start, end)."""
    source = target = 0
    text, found = "", []
    for piece, translation in pairs:
        source, target = source + len(piece.before), target + len(piece.before)
        text += piece.before
        if piece.text is not None:
            end = target + len(translation)
            found.append({"source": [source, source + len(piece.text)], "target": [target, end]})
            source, target, text = source + len(piece.text), end, text + translation
        source, target, text = (
            source + len(piece.after),
            target + len(piece.after),
            text + piece.after,
        )
    return text, found


def split_lines(
    lines: list[str], lang: str, fits: Callable[[str], bool], first_line: int, segment: bool
) -> Documents:
    """Every line as pieces to translate: its sentences (segment) or the whole line, each
    split again where it does not fit the model, with a warning naming the line."""
    pieces, counts = [], []
    for number, line in enumerate(lines, start=first_line):
        if not line.strip():  # an empty or blank line: an empty translation, as ever
            shapes = [Piece("", None, "")]
        elif segment:
            shapes = [shaped(chunk) for chunk in sentences(line, lang)]
        else:  # the line as one input, as it is
            shapes = [Piece("", line, "")]
        found = []
        for piece in shapes:
            if piece.text is None or fits(piece.text):
                found.append(piece)
                continue
            parts = fitted(piece.text, fits)
            log.warning(
                "input line %d: a sentence too long for the model, translated in %d pieces",
                number,
                len(parts),
            )
            shaped_parts = [shaped(part) for part in parts]
            shaped_parts[0].before = piece.before + shaped_parts[0].before
            shaped_parts[-1].after += piece.after
            found += shaped_parts
        pieces += found
        counts.append(len(found))
    return Documents(pieces, counts)


def source_limit(translator: Translator) -> int:
    """The most subwords a source may have: MAX_SOURCE_TOKENS, and half the model's positions
    so that its translation (up to 1.5 times longer, and then some) has room too."""
    positions = getattr(translator.engine, "max_length", None)
    return MAX_SOURCE_TOKENS if positions is None else min(MAX_SOURCE_TOKENS, positions // 2)


def prepared(
    translator: Translator,
    lines: list[str],
    tgt_lang: str | None = None,
    segment: bool = True,
    lang: str | None = None,
    first_line: int = 1,
) -> Documents:
    """The lines as pieces the model takes (split_lines): lang is the segmenter's language
    (default: the model's source language)."""
    limit = source_limit(translator)
    tag = translator.target_tag(tgt_lang)

    def fits(text: str) -> bool:
        return len(translator.tokenizer.encode_src([text], tag)[0]) <= limit

    lang = lang or translator.config.data.src_lang
    if segment:
        check_language(lang)
    return split_lines(lines, lang, fits, first_line, segment)


def translate_lines(
    translator: Translator,
    lines: list[str],
    decode: DecodeConfig,
    first_line: int = 1,
    tgt_lang: str | None = None,
    segment: bool = True,
    lang: str | None = None,
) -> list[str]:
    """The best translation of each line, every sentence of it translated (segment) and
    joined with the line's spacing; lang is the segmenter's (default: the model's source)."""
    documents = prepared(translator, lines, tgt_lang, segment, lang, first_line)
    translations = translator.translate(documents.texts(), decode, first_line, None, tgt_lang)
    return documents.joined(translations)
