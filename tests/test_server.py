"""`python -m mt.serve` as clients use it: a real uvicorn server on 127.0.0.1, real HTTP
requests, two models at once, and the explorer page in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
from helpers import REPO, http_get, http_post, multi30k_lines, serving

from mt.common.checkpoint import load_checkpoint, save_checkpoint
from mt.config.schema import DecodeConfig
from mt.config.tools import ServeConfig
from mt.decoding.translator import Translator
from mt.serving.checks import BadRequest
from mt.serving.search_view import SearchRequest, check_reference

SENTENCES = multi30k_lines("train", "de", 3) + multi30k_lines("val", "de", 2)
LIMITS = ["max_sentences=6", "max_chars=300", "max_beam_size=8", "max_body_bytes=5000"]


@pytest.fixture(scope="module")
def server(moved_checkpoint, bahdanau_checkpoint, chosen_run):
    """mt.serve with the memorised Transformer ("model"), the Bahdanau model ("bahdanau") and
    the final.pt of a run with decode settings of its own ("chosen")."""
    final = chosen_run[0] / chosen_run[1]["final"]
    with serving(f"checkpoints=[{moved_checkpoint},{bahdanau_checkpoint},{final}]", *LIMITS) as url:
        yield url


def test_models_lists_them_with_their_attention(server):
    models = {m["name"]: m for m in http_get(server + "/models")}
    assert set(models) == {"model", "bahdanau", "chosen"}
    assert models["model"]["architecture"] == "transformer"
    assert models["model"]["attention"] == ["layer1/cross_attention", "layer2/cross_attention"]
    assert models["bahdanau"]["attention"] == ["alignment"]


@pytest.mark.parametrize("name", ["model", "bahdanau"])
def test_translations_equal_the_translator_api(server, name, moved_checkpoint, bahdanau_checkpoint):
    path = moved_checkpoint if name == "model" else bahdanau_checkpoint
    options = {"beam_size": 3, "nbest": 2, "length_penalty": 0.5}
    request = {"model": name, "sentences": SENTENCES, **options}
    status, body = http_post(server + "/translate", request)
    assert status == 200, body
    translator = Translator.from_checkpoint(path, "cpu")
    decode = DecodeConfig(**{**translator.config.decode.__dict__, **options})
    expected = translator.translate_nbest(SENTENCES, decode)
    got = [[(h["text"], h["score"]) for h in t["nbest"]] for t in body["translations"]]
    assert [[text for text, _ in n] for n in got] == [[text for text, _ in n] for n in expected]
    for ours, theirs in zip(got, expected, strict=True):
        assert [s for _, s in ours] == pytest.approx([s for _, s in theirs], abs=1e-5)
    assert [t["text"] for t in body["translations"]] == translator.translate(SENTENCES, decode)


def test_concurrent_requests_batched_together_answer_as_alone(server, moved_checkpoint):
    """Eight clients at once, each one or two sentences, share the server's batches."""
    requests = [SENTENCES[k % 5 : k % 5 + 1 + k % 2] for k in range(8)]
    with ThreadPoolExecutor(len(requests)) as pool:
        answers = list(
            pool.map(
                lambda sentences: http_post(
                    server + "/translate", {"model": "model", "sentences": sentences}
                ),
                requests,
            )
        )
    translator = Translator.from_checkpoint(moved_checkpoint, "cpu")
    for sentences, (status, body) in zip(requests, answers, strict=True):
        assert status == 200, body
        expected = translator.translate_nbest(sentences)
        assert [t["text"] for t in body["translations"]] == [n[0][0] for n in expected]
        got = [t["nbest"][0]["score"] for t in body["translations"]]
        assert got == pytest.approx([n[0][1] for n in expected], abs=1e-5)


def test_by_default_the_server_decodes_as_mt_translate_does(server, chosen_run, small_root):
    run_dir, results = chosen_run
    source = small_root / "small" / "test_2016_flickr.de"
    sentences = source.read_text(encoding="utf-8").splitlines()[:6]  # the server's limit
    status, body = http_post(server + "/translate", {"model": "chosen", "sentences": sentences})
    assert status == 200, body
    command = [sys.executable, "-m", "mt.translate", f"checkpoint={run_dir / results['final']}"]
    translated = subprocess.run(
        command, input="\n".join(sentences) + "\n", capture_output=True, text=True, timeout=300
    )
    assert translated.returncode == 0, translated.stderr
    assert [t["text"] for t in body["translations"]] == translated.stdout.splitlines()
    # ... which are the run's own test hypotheses.
    own = (run_dir / "test.hyp.en").read_text(encoding="utf-8").splitlines()[:6]
    assert translated.stdout.splitlines() == own


@pytest.mark.parametrize("name", ["model", "bahdanau"])
def test_attention_rows_are_distributions_over_the_real_source_pieces(server, name):
    request = {"model": name, "sentences": SENTENCES[:2], "attention": True, "beam_size": 2}
    status, body = http_post(server + "/translate", request)
    assert status == 200, body
    for sentence, translation in zip(SENTENCES[:2], body["translations"], strict=True):
        attention = translation["attention"]
        source, target = attention["source"], attention["target"]
        assert "".join(source[:-1]).replace("\u2581", " ").strip() == sentence
        assert source[-1] == target[-1] == "</s>"
        assert "".join(target[:-1]).replace("\u2581", " ").strip() == translation["text"]
        assert attention["maps"]
        for heads in attention["maps"].values():
            for head in heads:
                assert len(head) == len(target)
                for row in head:
                    assert len(row) == len(source)
                    assert min(row) >= 0
                    assert sum(row) == pytest.approx(1, abs=1e-3)


def test_a_paragraph_is_translated_sentence_by_sentence_with_each_ones_offsets(
    server, moved_checkpoint
):
    three = SENTENCES[:3]
    paragraph = "  ".join(three)
    request = {"model": "model", "sentences": [paragraph, three[0]], "attention": True}
    status, body = http_post(server + "/translate", request)
    assert status == 200, body
    alone = Translator.from_checkpoint(moved_checkpoint, "cpu").translate(three)
    joined, single = body["translations"]
    assert joined["text"] == "  ".join(alone)  # byte for byte, with the paragraph's spacing
    assert joined["attention"] is None and len(joined["sentences"]) == 3
    for sentence, source, target in zip(joined["sentences"], three, alone, strict=True):
        assert paragraph[slice(*sentence["source"])] == source
        assert joined["text"][slice(*sentence["target"])] == target
        assert sentence["attention"]["target"]  # each sentence's own attention
    # One sentence: its n-best and attention as before, and its one span.
    assert single["text"] == alone[0] and single["attention"]["maps"]
    assert single["sentences"] == [{"source": [0, len(three[0])], "target": [0, len(alone[0])]}]
    # Off: the paragraph is one input, as before.
    status, body = http_post(server + "/translate", {**request, "segment": False})
    whole = Translator.from_checkpoint(moved_checkpoint, "cpu").translate([paragraph])
    assert status == 200 and body["translations"][0]["text"] == whole[0]
    # The limit counts sentences as translated: 4 entries of 2 sentences are 8, past 6.
    status, body = http_post(
        server + "/translate", {**request, "sentences": [" ".join(three[:2])] * 4}
    )
    assert status == 413 and "8 sentences once split" in body["error"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"model": "model", "sentences": ["ein Hund", 3]}, 422, "sentences.1: Input should be"),
        ({"model": "model", "sentences": "ein Hund"}, 422, "sentences: Input should be"),
        ({"model": "model", "sentences": ["ein Hund"], "beam_size": "5"}, 422, "beam_size:"),
        ({"model": "model", "sentences": ["ein Hund"], "colour": 1}, 422, "colour: Extra"),
        ({"model": "model", "sentences": ["x"] * 7}, 413, "7 sentences, this server takes 6"),
        ({"model": "model", "sentences": ["x" * 301]}, 413, "sentences.0: 301 characters"),
        ({"model": "model", "sentences": ["x"], "beam_size": 9}, 422, "max_beam_size=8"),
        ({"model": "model", "sentences": ["x"], "nbest": 4, "beam_size": 3}, 422, "nbest: 4"),
        ({"model": "nope", "sentences": ["x"]}, 404, "no model named 'nope'"),
        ({"sentences": ["x"]}, 422, "model: required when several are served"),
        (b"{not json", 422, "body: not valid JSON"),
        ({"model": "model", "sentences": ["x"], "length_penalty": 1e308}, 422, "length_penalty:"),
        ({"model": "model", "sentences": ["x"], "length_penalty": float("inf")}, 422, "length_"),
        ({"model": "model", "sentences": ["ein \ud800 Hund"]}, 422, "sentences.0: not text"),
        ({"model": "model", "sentences": ["x"], "tgt_lang": "\ud800"}, 422, "tgt_lang: Value"),
        ({"model": "\ud800", "sentences": ["x"]}, 422, "model: Value error, not text"),
        ({"model": "model", "sentences": ["x" * 250] * 20}, 413, "this server takes 5000"),
    ],
)
def test_a_bad_request_gets_its_4xx_and_the_server_keeps_serving(server, body, status, message):
    got, answer = http_post(server + "/translate", body)
    assert got == status
    assert set(answer) == {"error"} and message in answer["error"]
    assert "\n" not in answer["error"]
    ok, good = http_post(server + "/translate", {"model": "model", "sentences": SENTENCES[:1]})
    assert ok == 200 and good["translations"][0]["text"]


def test_the_search_view_records_what_the_server_translates(server, moved_checkpoint):
    sentence = SENTENCES[1]
    request = {"model": "model", "sentence": sentence, "beam_size": 3, "top_k": 4}
    status, answer = http_post(server + "/search", request)
    assert status == 200, answer
    translator = Translator.from_checkpoint(moved_checkpoint, "cpu")
    decode = replace(translator.config.decode, beam_size=3)
    assert answer["best"]["text"] == translator.translate([sentence], decode)[0]
    assert [len(options) for options in answer["steps"][0]["alternatives"]] == [4, 0, 0]
    for found in answer["finished"]:  # attention rows: the hypothesis's pieces and EOS
        assert len(found["attention"]) == len(found["tokens"]) + 1
        assert all(len(row) == len(answer["source"]) for row in found["attention"])
    # A node clicked: the search again from its path, forced, as translate forces a prefix.
    second = answer["steps"][1]["kept"][-1]
    prefix = [answer["steps"][0]["kept"][second["parent"]]["token"], second["token"]]
    status, again = http_post(server + "/search", {**request, "prefix": prefix})
    history, _ = translator.recorded_search(sentence, decode, prefix=prefix)
    assert again["best"]["tokens"] == history.best_path(0) and again["best"]["tokens"][:2] == prefix
    # A reference judged: the output itself, and the model's second choice.
    (nbest,) = translator.translate_nbest([sentence], replace(decode, nbest=2))
    for reference, verdict in ((nbest[0][0], "exact"), (nbest[1][0], "model error")):
        status, judged = http_post(server + "/search", {**request, "reference": reference})
        assert status == 200 and judged["reference"]["verdict"] == verdict
    # Forced through another start, the output is no choice of the search's: no verdict on it.
    forced = {**request, "prefix": prefix, "reference": nbest[0][0]}
    status, judged = http_post(server + "/search", forced)
    wanted = "exact" if again["best"]["text"] == nbest[0][0] else "forced prefix"
    assert status == 200 and judged["reference"]["verdict"] == wanted


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"beam_size": 0}, 422, "beam_size: Input should be greater than or equal to 2"),
        ({"beam_size": 10_000}, 422, "max_beam_size=8"),
        ({"prefix": [99_999]}, 422, "prefix.0: 99999 is no word of this model"),
        ({"prefix_text": "\u2603 Two"}, 422, "has characters this model cannot write"),
        ({"reference": SENTENCES[0]}, 422, "reference: reads as de text, not en"),
        ({"reference": "A dog \ud800"}, 422, "reference: not text"),
        ({"reference": "x" * 301}, 413, "reference: 301 characters"),
        ({"sentence": "x" * 301}, 413, "sentence: 301 characters"),
        ({"top_k": 21}, 422, "top_k: Input should be less than or equal to 20"),
    ],
)
def test_a_bad_search_gets_its_4xx_and_the_page_can_search_again(server, body, status, message):
    request = {"model": "model", "sentence": SENTENCES[0]}
    got, answer = http_post(server + "/search", {**request, **body})
    assert got == status and set(answer) == {"error"} and message in answer["error"], answer
    ok, good = http_post(server + "/search", request)
    assert ok == 200 and good["best"]["text"]


def test_a_reference_past_the_models_positions_is_refused_in_one_line(memorised_run, tmp_path):
    payload = load_checkpoint(memorised_run[0] / "checkpoints" / "final.pt")
    payload["config"]["model"]["max_positions"] = 16  # a table, not weights
    save_checkpoint(payload, tmp_path / "short.pt")
    translator = Translator.from_checkpoint(tmp_path / "short.pt", "cpu")
    request = SearchRequest(sentence=SENTENCES[0], reference=" ".join(["Two"] * 20))
    pieces = len(translator.tokenizer.encode_tgt([request.reference])[0])
    with pytest.raises(BadRequest, match=rf"^reference: {pieces} subwords, past the model's 16"):
        check_reference(translator, request, ServeConfig())


def test_a_body_sent_in_chunks_past_the_limit_gets_413_in_one_line(server):
    # An iterable and no Content-Length: urllib sends it chunked, 6000 bytes against 5000.
    # One chunk, so that it is all written before the server answers and closes.
    body = json.dumps({"model": "model", "sentences": ["x" * 6000]}).encode()
    request = urllib.request.Request(
        server + "/translate", iter([body]), {"Content-Type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=60)
    assert refused.value.code == 413
    assert json.loads(refused.value.read()) == {
        "error": "body: over 5000 bytes, this server takes that many"
    }
    ok, good = http_post(server + "/translate", {"model": "model", "sentences": SENTENCES[:1]})
    assert ok == 200 and good["translations"][0]["text"]


def test_the_page_shows_every_models_translation_heatmap_and_search_in_chromium(
    moved_checkpoint, bahdanau_checkpoint, tmp_path
):
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("needs Chromium and chromedriver: apt-get install chromium chromium-driver")
    six = multi30k_lines("train", "de", 6)
    paragraph = " ".join(six)  # a pasted paragraph: its sentences translated one by one
    command = [sys.executable, str(REPO / "scripts" / "explorer_screenshot.py"), "--beam", "3"]
    command += ["--checkpoint", str(moved_checkpoint), "--checkpoint", str(bahdanau_checkpoint)]
    # The search view of the paragraph's first sentence (each sentence has its own).
    single, reference = six[0], multi30k_lines("train", "en", 1)[0]
    command += ["--sentence", paragraph, "--search", "--alpha", "2.5", "--reference", reference]
    command += ["--screenshot", str(tmp_path / "page.png"), "--report", str(tmp_path / "page.json")]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "page.json").read_text(encoding="utf-8"))
    page = report["models"]
    assert set(page) == {"model", "bahdanau"}
    for name, path in (("model", moved_checkpoint), ("bahdanau", bahdanau_checkpoint)):
        translator = Translator.from_checkpoint(path, "cpu")
        decode = DecodeConfig(**{**translator.config.decode.__dict__, "beam_size": 3})
        assert page[name]["translation"] == " ".join(translator.translate(six, decode))
        assert page[name]["heatmap_cells"] > 0
    # Hovering the first target piece lit up the source pieces it attended to.
    assert any(shown["highlighted_sources"] > 0 for shown in page.values())
    assert (tmp_path / "page.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The search view: the tree, the slider, a click.
    search = report["search"]
    translator = Translator.from_checkpoint(moved_checkpoint, "cpu")
    decode = replace(translator.config.decode, beam_size=max(translator.config.decode.beam_size, 2))
    assert search["model"] == "model" and search["nodes"] > 0
    assert search["chosen"] == translator.translate([single], decode)[0]
    history, _ = translator.recorded_search(single, decode)
    text = lambda tokens: translator.tokenizer.decode_tgt([tokens])[0]  # noqa: E731
    assert search["reranked"] == text(history.best_path(0, 2.5))
    assert search["alternatives"] == 5 and search["hover_rows"] == 1
    exact = search["chosen"] == reference  # the memorised model's output is its reference
    assert search["verdict"].startswith("exact" if exact else ("search error", "model error"))
    row = int(search["clicked"].split(":")[1])
    prefix = history.path(0, 1, history.steps[0][1].kept[row])
    redone, _ = translator.recorded_search(
        single, replace(decode, length_penalty=2.5), None, prefix
    )
    assert search["chosen_after_click"] == text(redone.best_path(0))


def open_held(url: str, count: int, request: bytes) -> list[socket.socket]:
    """count connections that each send request (less than it announces) and then stall."""
    host, port = url.removeprefix("http://").split(":")
    held = []
    for _ in range(count):
        connection = socket.create_connection((host, int(port)), timeout=10)
        connection.sendall(request)
        held.append(connection)
    return held


def closed_by_server(connection: socket.socket, within_s: float) -> bool:
    """Whether the server closes connection within within_s (after any answer it sends)."""
    connection.settimeout(within_s)
    try:
        while connection.recv(4096):
            pass
        return True
    except TimeoutError:
        return False
    finally:
        connection.close()


# Headers that announce a 100-byte body, and one byte of it; headers cut off half-way.
STALLED_BODY = (
    b"POST /translate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100\r\n\r\n{"
)
STALLED_HEADERS = b"POST /translate HTTP/1.1\r\nHost: x\r\nContent-Ty"


def answer_status(connection: socket.socket) -> bytes:
    """The status line of the server's next answer, read whole (b"" if it closed instead)."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = connection.recv(4096)
        if not chunk:
            return b""
        received += chunk
    head, body = received.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"content-length: (\d+)", head, re.IGNORECASE).group(1))
    while len(body) < length:
        body += connection.recv(4096)
    return head.split(b"\r\n")[0]


def test_a_read_deadline_belongs_to_one_request(moved_checkpoint):
    with serving(f"checkpoint={moved_checkpoint}", "read_timeout_s=4") as url:
        host, port = url.removeprefix("http://").split(":")
        connection = socket.create_connection((host, int(port)), timeout=10)
        started = time.monotonic()
        time.sleep(2)
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer_status(connection) == b"HTTP/1.1 200 OK"  # the next deadline: 6 s
        body = json.dumps({"sentences": SENTENCES[:1]}).encode()
        head = "POST /translate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        head += f"Content-Length: {len(body)}\r\n\r\n"
        connection.sendall(head.encode() + body[:1])
        time.sleep(max(0.0, 5 - (time.monotonic() - started)))  # past the first deadline
        connection.sendall(body[1:])
        assert answer_status(connection) == b"HTTP/1.1 200 OK"
        connection.close()


def test_slow_clients_are_bounded_in_time_and_number_and_health_keeps_answering(
    moved_checkpoint,
):
    limits = ["read_timeout_s=3", "max_connections=100"]
    with serving(f"checkpoint={moved_checkpoint}", *limits) as url:
        held = open_held(url, 60, STALLED_BODY) + open_held(url, 20, STALLED_HEADERS)
        assert http_get(url + "/health")["status"] == "ok"  # 81 of 100 connections open
        past = open_held(url, 30, STALLED_BODY)
        answers = []
        for connection in past:  # past the limit: 503 at once, not held
            connection.settimeout(1)
            try:
                answers.append(connection.recv(12))
            except TimeoutError:
                answers.append(b"")
        assert sum(a == b"HTTP/1.1 503" for a in answers) >= 10, answers
        assert set(answers) <= {b"", b"HTTP/1.1 503"}
        # Every stalled connection is closed by the server once its 3 s have passed.
        assert all(closed_by_server(c, within_s=6) for c in held + past)
        assert http_get(url + "/health")["status"] == "ok"
        status, answer = http_post(url + "/translate", {"sentences": SENTENCES[:1]})
        assert status == 200 and answer["translations"][0]["text"]
