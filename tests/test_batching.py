"""Cross-request batching (mt/serving/batcher.py) over a real translator: who shares a batch,
who waits for whom, a full queue, a failed batch; and, through a real server, the path
without batching and CTranslate2 exports served beside checkpoints."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
import torch
from helpers import http_get, http_post, multi30k_lines, serving

from mt.common.errors import MTError
from mt.decoding.translator import Translator
from mt.deploy.engine import ctranslate2_translator
from mt.serving.batcher import Batcher, Busy

SENTENCES = multi30k_lines("train", "de", 8)


class Recording:
    """A translator whose search records each batch's sentences and, until the gate opens,
    holds the worker inside its first batch (so that the test decides what is queued)."""

    def __init__(self, translator: Translator):
        self.translator, self.tokenizer = translator, translator.tokenizer
        self.batches: list[list[str]] = []
        self.entered, self.gate = threading.Event(), threading.Event()

    def search(self, sentences, decode, tgt_lang=None):
        self.batches.append(list(sentences))
        self.entered.set()
        assert self.gate.wait(60)
        return self.translator.search(sentences, decode, tgt_lang=tgt_lang)


@pytest.fixture(scope="module")
def translator(moved_checkpoint) -> Translator:
    return Translator.from_checkpoint(moved_checkpoint, "cpu")


def held(translator: Translator, batch_tokens: int = 1024, **options):
    """A batcher whose worker is held in a first one-sentence batch; and that batch's future."""
    recording = Recording(translator)
    batcher = Batcher(recording, batch_tokens, options.pop("max_queued", 1000), **options)
    first = batcher.submit(["Ein Hund."], translator.config.decode, list)
    assert recording.entered.wait(60)
    return recording, batcher, first


def texts(translator: Translator, found: list) -> list[str]:
    return [translator.texts(result)[0][0] for result in found]


def test_requests_that_wait_together_are_decoded_in_one_batch(translator):
    recording, batcher, first = held(translator)
    decode = translator.config.decode
    waiting = [batcher.submit([s], decode, list) for s in SENTENCES[:4]]
    recording.gate.set()
    assert first.result(60) and recording.batches[1] == SENTENCES[:4]
    alone = translator.translate(SENTENCES[:4], decode)
    assert [texts(translator, f.result(60))[0] for f in waiting] == alone


def test_a_small_request_waits_for_one_piece_of_a_large_one_not_all(translator):
    recording, batcher, first = held(translator, batch_tokens=1)  # one sentence a piece
    decode = translator.config.decode
    large = batcher.submit(SENTENCES[:6], decode, list)
    small = batcher.submit(["Zwei Männer lachen."], decode, list)
    recording.gate.set()
    found = large.result(60)
    assert recording.batches[1:4] == [[SENTENCES[0]], ["Zwei Männer lachen."], [SENTENCES[1]]]
    assert texts(translator, found) == translator.translate(SENTENCES[:6], decode)
    assert texts(translator, small.result(60)) == translator.translate(["Zwei Männer lachen."])


def test_without_batching_each_request_is_decoded_whole_and_alone(translator):
    recording, batcher, first = held(translator, batch_tokens=1, batching=False)
    decode = translator.config.decode
    large = batcher.submit(SENTENCES[:6], decode, list)
    small = batcher.submit(["Zwei Männer lachen."], decode, list)
    recording.gate.set()
    small.result(60)
    assert recording.batches[1:] == [SENTENCES[:6], ["Zwei Männer lachen."]]
    assert texts(translator, large.result(60)) == translator.translate(SENTENCES[:6], decode)


def test_requests_with_other_decode_settings_take_their_own_turn(translator):
    recording, batcher, first = held(translator)
    decode = translator.config.decode
    wide = batcher.submit(SENTENCES[:1], replace(decode, beam_size=4), list)
    narrow = batcher.submit(SENTENCES[1:2], replace(decode, beam_size=2), list)
    same = batcher.submit(SENTENCES[2:3], replace(decode, beam_size=4), list)
    recording.gate.set()
    for future in (wide, narrow, same):
        future.result(60)
    assert recording.batches[1:] == [[SENTENCES[0], SENTENCES[2]], [SENTENCES[1]]]


def test_a_full_queue_refuses_at_once_and_a_failed_batch_fails_only_its_requests(translator):
    recording, batcher, first = held(translator, max_queued=3)
    decode = translator.config.decode
    queued = batcher.submit(SENTENCES[:2], decode, list)
    broken = batcher.submit(SENTENCES[2:3], replace(decode, beam_size=0), list)  # search raises
    with pytest.raises(Busy, match="3 sentences are queued for this model, it takes 3"):
        batcher.submit(SENTENCES[3:4], decode, list)
    recording.gate.set()
    with pytest.raises(MTError, match="decode.beam_size=0"):
        broken.result(60)
    assert len(queued.result(60)) == 2
    later = batcher.submit(SENTENCES[:1], decode, list)
    assert texts(translator, later.result(60)) == translator.translate(SENTENCES[:1], decode)


@pytest.fixture(scope="module")
def unbatched(moved_checkpoint, exported):
    """The memorised Transformer ("model") and its CTranslate2 export ("ct2"), served one
    request at a time, with a queue of 4 sentences."""
    models = f"checkpoints=[{moved_checkpoint},{exported}]"
    with serving(models, "batching=false", "max_queued=4") as url:
        yield url


def test_the_one_at_a_time_path_answers_as_the_translator_does(unbatched, translator):
    request = {"model": "model", "sentences": SENTENCES[:4], "beam_size": 3}
    status, body = http_post(unbatched + "/translate", request)
    assert status == 200, body
    decode = replace(translator.config.decode, beam_size=3)
    assert [t["text"] for t in body["translations"]] == translator.translate(SENTENCES[:4], decode)
    status, body = http_post(unbatched + "/translate", {"model": "model", "sentences": SENTENCES})
    assert status == 503 and "queued for this model, it takes 4" in body["error"]


def test_health_and_unknown_paths_answer_in_json(unbatched):
    assert http_get(unbatched + "/health") == {
        "status": "ok",
        "queued_sentences": {"model": 0, "ct2": 0},
    }
    status, body = http_post(unbatched + "/no/such/path", {})
    assert status == 404 and body == {"error": "Not Found"}


def test_an_export_is_served_by_ctranslate2_with_its_attention(unbatched, exported, translator):
    models = {m["name"]: m for m in http_get(unbatched + "/models")}
    assert models["ct2"]["engine"] == "ctranslate2" and models["model"]["engine"] == "torch"
    assert models["ct2"]["parameters"] == models["model"]["parameters"]
    request = {"model": "ct2", "sentences": SENTENCES[:3], "attention": True}
    status, body = http_post(unbatched + "/translate", request)
    assert status == 200, body
    expected = ctranslate2_translator(exported, "cpu").translate(SENTENCES[:3])
    assert [t["text"] for t in body["translations"]] == expected
    # CTranslate2's one map is our last decoder layer's first cross-attention head.
    found_by_torch = translator.search(SENTENCES[:3], translator.config.decode)
    for translation, found in zip(body["translations"], found_by_torch, strict=True):
        (theirs,) = translation["attention"]["maps"].values()
        ours = translator.engine.attention(found[0], found[1][0].tokens)["layer2/cross_attention"]
        torch.testing.assert_close(torch.tensor(theirs[0]), ours[0], atol=2e-4, rtol=0)
