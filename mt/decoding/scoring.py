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


# Source lengths in words: buckets 1-5, 6-10, ..., 26-30 and 31+, fine enough for Multi30k's
# 12-word average and its 40-word longest, where Bahdanau et al.'s Fig. 2 tells its story.
LENGTH_EDGES = (5, 10, 15, 20, 25, 30)


def length_buckets(sources: list[str], edges: tuple[int, ...] = LENGTH_EDGES) -> list[list[int]]:
    """Sentence indices per source-length bucket (words, split on whitespace)."""
    buckets: list[list[int]] = [[] for _ in range(len(edges) + 1)]
    for k, source in enumerate(sources):
        buckets[sum(len(source.split()) > edge for edge in edges)].append(k)
    return buckets


def by_source_length(
    sources: list[str], hypotheses: list[str], references: list[str], edges=LENGTH_EDGES
) -> list[dict]:
    """BLEU and chrF of each source-length bucket's sentences, with its size and name ("6-10",
    "31+"); an empty bucket has no scores."""
    found = []
    for k, indices in enumerate(length_buckets(sources, edges)):
        low = 1 if k == 0 else edges[k - 1] + 1
        name = f"{low}-{edges[k]}" if k < len(edges) else f"{low}+"
        entry = {"words": name, "sentences": len(indices), "bleu": None, "chrf": None}
        if indices:
            hyps, refs = [hypotheses[i] for i in indices], [references[i] for i in indices]
            scores = corpus_scores(hyps, refs)
            entry.update(bleu=scores["bleu"], chrf=scores["chrf"])
        found.append(entry)
    return found
