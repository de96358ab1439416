"""Search errors told apart from model errors (Stahlberg & Byrne, 2019): per test sentence,
the reference's score under the model (forced decoding, as mt.score) against the output's,
both ranked as beam search ranks them (log-probability over the GNMT length penalty). A
reference the model scores higher than the output it was given is a search error: a bigger
beam could find it. An output the model scores at least as high as the reference, and that
is not the reference, is a model error: no search fixes it."""

from __future__ import annotations

from dataclasses import replace

from mt.config.schema import DecodeConfig
from mt.decoding.likelihood import Likelihood
from mt.decoding.search import Hypothesis, length_penalty
from mt.decoding.translator import Translator
from mt.evaluation.scores import corpus_scores


def ranked(log_prob: float, tokens: int, alpha: float) -> float:
    """What beam search ranks a finished hypothesis of tokens tokens (EOS included) by."""
    return log_prob / length_penalty(tokens, alpha)


def verdict(
    output: list[int] | None, output_score: float, reference: list[int], reference_score: float
) -> str:
    """ "exact" (the output is the reference), "search_errors" (the model scores the
    reference higher: a bigger beam could find it) or "model_errors" (no search fixes it)."""
    if output == reference:
        return "exact"
    return "search_errors" if reference_score > output_score else "model_errors"


def judge(
    outputs: list[Hypothesis | None],
    references: list[list[int]],
    likelihoods: list[Likelihood],
    alpha: float,
) -> list[dict | None]:
    """Per sentence (None where its source is empty): its verdict, and its output's and its
    reference's scores as beam search ranks them."""
    judged = []
    for best, wanted, likelihood in zip(outputs, references, likelihoods, strict=True):
        if best is None:
            judged.append(None)
            continue
        output_score = ranked(best.log_prob, len(best.tokens) + 1, alpha)
        reference_score = ranked(likelihood.log_prob, likelihood.tokens, alpha)
        kind = verdict(best.tokens, output_score, wanted, reference_score)
        judged.append({"verdict": kind, "output": output_score, "reference": reference_score})
    return judged


def search_errors(
    translator: Translator,
    sources: list[str],
    references: list[str],
    decode: DecodeConfig,
    beams: list[int],
    tgt_lang: str | None = None,
) -> list[dict]:
    """Per beam size: the shares of sentences whose output is the reference, a search error
    or a model error, the BLEU of those outputs, and per sentence its verdict and the
    output's and the reference's scores (for the figure of one against the other)."""
    forced = translator.score(sources, references, decode.max_tokens, tgt_lang)
    reference_ids = translator.tokenizer.encode_tgt(references)
    rows = []
    for beam in beams:
        at_beam = replace(decode, beam_size=beam, nbest=1, sampling=False)
        found = translator.search(sources, at_beam, tgt_lang=tgt_lang)
        best = [result[1][0] if result else None for result in found]
        judged = judge(best, reference_ids, forced, decode.length_penalty)
        shares = {
            kind: sum(j is not None and j["verdict"] == kind for j in judged) / len(sources)
            for kind in ("exact", "search_errors", "model_errors")
        }
        outputs = [translator.texts(result)[0][0] for result in found]
        bleu = corpus_scores(outputs, references)["bleu"]
        rows.append({"beam": beam, **shares, "bleu": bleu, "sentences": judged})
    return rows
