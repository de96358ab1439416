"""Corpus BLEU and chrF with sacrebleu, on detokenised output against raw references."""

from __future__ import annotations

from collections import Counter

from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

TOKENIZE_13A = Tokenizer13a()


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


# How often a word occurs in the training targets: never, once, 2-4, 5-9, 10-99, 100 or more
# (compare-mt's buckets): rare words are where a model's vocabulary handling shows.
FREQUENCY_BUCKETS = ((0, 0), (1, 1), (2, 4), (5, 9), (10, 99), (100, None))


def words(text: str) -> list[str]:
    """text as sacreBLEU's 13a tokenisation splits it, the words BLEU counts."""
    return TOKENIZE_13A(text).split()


def frequency_bucket(count: int) -> int:
    return next(
        k for k, (low, high) in enumerate(FREQUENCY_BUCKETS) if high is None or count <= high
    )


def word_f_by_frequency(
    hypotheses: list[str], references: list[str], train_counts: Counter
) -> list[dict]:
    """Target-word precision, recall and F-measure per bucket of training frequency (of the
    reference or hypothesis word; a word matches as often as it occurs in both the hypothesis
    and its reference), with the bucket's reference word count."""
    matched, in_hyp, in_ref = ([0] * len(FREQUENCY_BUCKETS) for _ in range(3))
    for hypothesis, reference in zip(hypotheses, references, strict=True):
        hyp, ref = Counter(words(hypothesis)), Counter(words(reference))
        for word in hyp.keys() | ref.keys():
            k = frequency_bucket(train_counts[word])
            matched[k] += min(hyp[word], ref[word])
            in_hyp[k] += hyp[word]
            in_ref[k] += ref[word]
    found = []
    for k, (low, high) in enumerate(FREQUENCY_BUCKETS):
        name = f"{low}+" if high is None else (str(low) if low == high else f"{low}-{high}")
        precision = matched[k] / in_hyp[k] if in_hyp[k] else 0.0
        recall = matched[k] / in_ref[k] if in_ref[k] else 0.0
        f = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        found.append(
            {
                "train_count": name,
                "ref_words": in_ref[k],
                "precision": precision,
                "recall": recall,
                "f": f,
            }
        )
    return found


def breakdowns(sources: list[str], hyps: list[str], refs: list[str], counts) -> dict:
    """Where a test score comes from: by source length, and target-word F by how often the
    word occurs in the training targets (all directions' targets, for a multilingual run)."""
    return {
        "by_length": by_source_length(sources, hyps, refs),
        "word_f_by_frequency": word_f_by_frequency(hyps, refs, counts),
    }
