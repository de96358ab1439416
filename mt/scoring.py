"""Corpus BLEU and chrF with sacrebleu, on detokenised output against raw references."""

from __future__ import annotations

from sacrebleu.metrics import BLEU, CHRF


def corpus_scores(hypotheses: list[str], references: list[str]) -> dict:
    """sacrebleu's defaults (BLEU: cased, 13a tokenisation) with their signatures."""
    bleu, chrf = BLEU(), CHRF()
    return {
        "bleu": bleu.corpus_score(hypotheses, [references]).score,
        "chrf": chrf.corpus_score(hypotheses, [references]).score,
        "signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
    }
