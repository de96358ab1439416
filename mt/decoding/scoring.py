"""Corpus BLEU and chrF with sacrebleu, on detokenised output against raw references."""

from __future__ import annotations

from sacrebleu.metrics import BLEU, CHRF


def corpus_scores(hypotheses: list[str], references: list[str]) -> dict:
    """sacrebleu's defaults (BLEU: cased, 13a tokenisation) with their signatures, and the
    lowercased BLEU that papers training on Multi30k alone report (their multi-bleu.perl on
    lowercased, tokenised text), so our figures can stand beside theirs."""
    bleu, chrf, lowercased = BLEU(), CHRF(), BLEU(lowercase=True)
    return {
        "bleu": bleu.corpus_score(hypotheses, [references]).score,
        "chrf": chrf.corpus_score(hypotheses, [references]).score,
        "bleu_lc": lowercased.corpus_score(hypotheses, [references]).score,
        "signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
        "bleu_lc_signature": str(lowercased.get_signature()),
    }
