"""The explorer's search view: POST /search records one sentence's beam search
(mt/decoding/beam_history.py) and answers with the tree the page draws, each live
hypothesis's top-k next tokens, every finished hypothesis with its attention, and, given a
reference, whether a wrong output is the search's error or the model's.

Size: a tree has at most 3 x beam candidates per step (kept, finished, pruned) and beam is
capped by the server's max_beam_size; the page draws the kept and finished ones and folds
the pruned into a count per step.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import asdict, replace

import torch
from pydantic import BaseModel, ConfigDict, Field

from mt.common.errors import MTError
from mt.common.special_ids import UNK_ID
from mt.config.schema import DecodeConfig
from mt.config.tools import ServeConfig
from mt.data.languages import closest_language
from mt.decoding.beam_history import BeamHistory, normalised
from mt.decoding.inference import TorchEngine
from mt.decoding.translator import Translator
from mt.evaluation.search_errors import verdict
from mt.serving.batcher import Batcher, Busy
from mt.serving.checks import BadRequest, check_sentence, limited_decode

MAX_TOP_K = 20
VERDICTS = {
    "exact": "exact",
    "search_errors": "search error",
    "model_errors": "model error",
    "forced": "forced prefix",
}
SPECIAL_IDS = 4  # PAD, UNK, BOS, EOS: never part of a prefix


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    sentence: str = Field(min_length=1)
    model: str | None = None  # may be left out when one model is served
    beam_size: int | None = Field(None, ge=2)  # default: the model's own (2 at least)
    length_penalty: float | None = Field(None, ge=0, le=10, allow_inf_nan=False)
    tgt_lang: str | None = None
    top_k: int = Field(5, ge=1, le=MAX_TOP_K)  # next tokens shown per live hypothesis
    prefix: list[int] | None = None  # target ids forced first: a node of the tree, clicked
    prefix_text: str | None = None  # or words typed, after prefix
    reference: str | None = None  # a translation to judge the output against


def search_decode(translator: Translator, request: SearchRequest, limits: ServeConfig):
    """The model's decode settings for a recorded search of request; refused past limits."""
    check_sentence("sentence", request.sentence, limits)
    decode = translator.config.decode
    beam = request.beam_size or max(decode.beam_size, 2)
    return replace(limited_decode(decode, beam, request.length_penalty, limits), sampling=False)


def forced_prefix(translator: Translator, request: SearchRequest, limits: ServeConfig) -> list[int]:
    """The request's prefix as target ids: its ids, checked, then its typed words, encoded."""
    vocab = translator.tokenizer.tgt_vocab_size
    ids = list(request.prefix or [])
    for k, token in enumerate(ids):
        if not SPECIAL_IDS <= token < vocab:
            raise BadRequest(
                422, f"prefix.{k}: {token} is no word of this model ({SPECIAL_IDS}..{vocab - 1})"
            )
    if request.prefix_text and request.prefix_text.strip():
        check_sentence("prefix_text", request.prefix_text, limits)
        typed = translator.tokenizer.encode_tgt([request.prefix_text])[0]
        if UNK_ID in typed:
            raise BadRequest(
                422, f"prefix_text: {request.prefix_text!r} has characters this model cannot write"
            )
        ids += typed
    limit = translator.engine.max_length
    if limit is not None and len(ids) >= limit:
        raise BadRequest(422, f"prefix: {len(ids)} subwords, the model has {limit} positions")
    return ids


def check_reference(translator: Translator, request: SearchRequest, limits: ServeConfig) -> None:
    """A reference that is text in the model's target language, within its positions."""
    reference = request.reference
    check_sentence("reference", reference, limits)
    expected = request.tgt_lang or translator.target_languages[0]
    read = closest_language(reference, translator.profiles) if translator.profiles else None
    if read is not None and read != expected:
        raise BadRequest(422, f"reference: reads as {read} text, not {expected}")
    (ids,) = translator.tokenizer.encode_tgt([reference])
    limit = translator.engine.max_length
    if limit is not None and len(ids) + 1 > limit:
        raise BadRequest(422, f"reference: {len(ids)} subwords, past the model's {limit} positions")


def judged(
    translator: Translator, request: SearchRequest, best, alpha: float, forced: bool
) -> dict:
    """The reference's score under the model against the output's, and what that says (of
    an output forced to start with a prefix: nothing about the search)."""
    reference = request.reference
    (likelihood,) = translator.score([request.sentence], [reference], tgt_lang=request.tgt_lang)
    reference_score = normalised(likelihood.log_prob, likelihood.tokens, alpha)
    (reference_ids,) = translator.tokenizer.encode_tgt([reference])
    kind = verdict(best.tokens, best.score, reference_ids, reference_score)
    if forced and kind != "exact":  # not the search's own choice: no verdict on the search
        kind = "forced"
    return {
        "reference": reference,
        "reference_score": reference_score,
        "output_score": best.score,
        "verdict": VERDICTS[kind],
    }


def attention_rows(translator: Translator, src_ids: torch.Tensor, tokens: list[int]):
    """The last attention map along tokens, its heads averaged: (len(tokens) + 1) x source."""
    maps = translator.engine.attention(src_ids, tokens)
    if not maps:
        return None
    return list(maps.values())[-1].mean(dim=0).double().round(decimals=4).tolist()


def tree_json(translator: Translator, history: BeamHistory) -> list[dict]:
    """The recorded steps as plain data (BeamHistory.as_json), each token with its piece."""
    piece = translator.tokenizer.tgt.id_to_piece
    steps = history.as_json(0)
    for step in steps:
        for node in step["kept"] + step["finished"] + step["pruned"]:
            node["piece"] = piece(node["token"])
        for options in step["alternatives"]:
            for option in options:
                option["piece"] = piece(option["token"])
    return steps


def finished_json(translator: Translator, history: BeamHistory, src_ids) -> list[dict]:
    """Every finished hypothesis, in the order the search found them, with its attention."""
    found = []
    for t, step in enumerate(history.steps[0]):
        for index, node in enumerate(step.finished):
            tokens = history.path(0, t, node)[:-1]
            found.append(
                {
                    "step": t,
                    "index": index,
                    "tokens": tokens,
                    "text": translator.tokenizer.decode_tgt([tokens])[0],
                    "log_prob": node.log_prob,
                    "score": node.score,
                    "attention": attention_rows(translator, src_ids, tokens),
                }
            )
    return found


def search_json(
    translator: Translator, request: SearchRequest, decode: DecodeConfig, prefix: list[int]
) -> dict:
    """The recorded search of request (run on the model's worker thread)."""
    history, hyps = translator.recorded_search(
        request.sentence, decode, request.tgt_lang, prefix, request.top_k
    )
    tag = translator.target_tag(request.tgt_lang)
    (src_ids,) = translator.source_ids([request.sentence], [1], tag)
    piece = translator.tokenizer.tgt.id_to_piece
    best = hyps[0]
    answer = {
        "beam_size": decode.beam_size,
        "length_penalty": decode.length_penalty,
        "source": [translator.tokenizer.src.id_to_piece(i) for i in src_ids.tolist()],
        "prefix": [{"token": token, "piece": piece(token)} for token in prefix],
        "steps": tree_json(translator, history),
        "finished": finished_json(translator, history, src_ids),
        "best": {**asdict(best), "text": translator.tokenizer.decode_tgt([best.tokens])[0]},
    }
    if wants_verdict(request):
        answer["reference"] = judged(translator, request, best, decode.length_penalty, bool(prefix))
    return answer


def wants_verdict(request: SearchRequest) -> bool:
    return request.reference is not None and bool(request.reference.strip())


def queue_search(
    translator: Translator, batcher: Batcher, request: SearchRequest, limits: ServeConfig
) -> Future:
    """The request checked and its search queued on the model's worker (which alone runs
    the model): the future holds its JSON answer."""
    if not isinstance(translator.engine, TorchEngine):
        raise BadRequest(422, "model: the search view needs a checkpoint, not an mt.export model")
    decode = search_decode(translator, request, limits)
    try:
        translator.target_tag(request.tgt_lang)
    except MTError as refused:
        raise BadRequest(422, str(refused)) from None
    prefix = forced_prefix(translator, request, limits)
    if wants_verdict(request):
        check_reference(translator, request, limits)
    try:
        return batcher.run(lambda: search_json(translator, request, decode, prefix))
    except Busy as busy:
        raise BadRequest(503, f"{busy}") from None
