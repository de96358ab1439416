"""Search errors told apart from model errors (Stahlberg & Byrne, 2019): per test sentence,
the reference's score under the model (forced decoding, as mt.score) against the output's,
both ranked as beam search ranks them (log-probability over the GNMT length penalty). A
reference the model scores higher than the output it was given is a search error: a bigger
beam could find it. An output the model scores at least as high as the reference, and that
is not the reference, is a model error: no search fixes it."""

from __future__ import annotations

from dataclasses import replace

from mt.config.schema import DecodeConfig
from mt.decoding.search import length_penalty
from mt.decoding.translator import Translator
from mt.evaluation.scores import corpus_scores


def ranked(log_prob: float, tokens: int, alpha: float) -> float:
    """What beam search ranks a finished hypothesis of tokens tokens (EOS included) by."""
    return log_prob / length_penalty(tokens, alpha)


def search_errors(
    translator: Translator,
    sources: list[str],
    references: list[str],
    decode: DecodeConfig,
    beams: list[int],
    tgt_lang: str | None = None,
) -> list[dict]:
    """Per beam size: the shares of sentences whose output is the reference, a search error
    or a model error, and the BLEU of those outputs."""
    alpha = decode.length_penalty
    forced = translator.score(sources, references, decode.max_tokens, tgt_lang)
    reference_ids = translator.tokenizer.encode_tgt(references)
    reference_scores = [ranked(f.log_prob, f.tokens, alpha) for f in forced]
    rows = []
    for beam in beams:
        at_beam = replace(decode, beam_size=beam, nbest=1, sampling=False)
        found = translator.search(sources, at_beam, tgt_lang=tgt_lang)
        counts = {"exact": 0, "search_errors": 0, "model_errors": 0}
        for result, wanted, wanted_score in zip(
            found, reference_ids, reference_scores, strict=True
        ):
            best = result[1][0] if result else None
            if best is None or best.tokens == wanted:
                counts["exact"] += best is not None
                continue
            output_score = ranked(best.log_prob, len(best.tokens) + 1, alpha)
            counts["search_errors" if wanted_score > output_score else "model_errors"] += 1
        outputs = [translator.texts(result)[0][0] for result in found]
        shares = {key: count / len(sources) for key, count in counts.items()}
        rows.append({"beam": beam, **shares, "bleu": corpus_scores(outputs, references)["bleu"]})
    return rows
