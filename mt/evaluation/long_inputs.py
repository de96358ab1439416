"""Long inputs: consecutive test sentences joined k at a time and translated as one input
(and split into sentences first), scored by BLEU, chrF and output / reference length ratio."""

from __future__ import annotations

import torch
from sacrebleu.metrics import BLEU, CHRF

from mt.decoding.documents import translate_lines
from mt.decoding.translator import Translator


def joined(lines: list[str], k: int) -> list[str]:
    """Consecutive lines joined k at a time by a space (the last group may hold fewer)."""
    return [" ".join(lines[i : i + k]) for i in range(0, len(lines), k)]


def joined_scores(
    translator: Translator, sources, references, k: int, tgt_lang, segmented: bool = False
) -> dict:
    """Scores and outputs ("hyps") of the test set joined k sentences at a time, each join one
    input (and, with segmented, split into sentences first)."""
    inputs, targets = joined(sources, k), joined(references, k)
    with torch.inference_mode():
        hyps = translator.translate(inputs, tgt_lang=tgt_lang)
        entry = {"k": k, "inputs": len(inputs)}
        entry["longest_source_words"] = max(len(s.split()) for s in inputs)
        entry.update(length_scores(hyps, targets), hyps=hyps)
        if segmented:
            decode = translator.config.decode
            split = translate_lines(translator, inputs, decode, tgt_lang=tgt_lang)
            entry["segmented"] = {**length_scores(split, targets), "hyps": split}
    return entry


def length_scores(hyps: list[str], targets: list[str]) -> dict:
    """BLEU, chrF and output / reference length ratio."""
    bleu = BLEU().corpus_score(hyps, [targets])
    chrf = CHRF().corpus_score(hyps, [targets]).score
    return {"bleu": bleu.score, "chrf": chrf, "length_ratio": bleu.sys_len / bleu.ref_len}
