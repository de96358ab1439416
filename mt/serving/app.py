"""The translation server: models loaded once, a JSON API over the existing search, and the
attention explorer page (mt/serving/static/) that shows them side by side.

    GET  /models      what is loaded: name, architecture, engine, languages, attention maps,
                      decode defaults
    GET  /health      {"status": "ok"} and the sentences queued per model
    POST /translate   {"sentences": [...], "model": NAME, "beam_size", "nbest",
                       "length_penalty", "attention": bool} -> translations, n-best, attention
    POST /search      {"sentence", "model", "beam_size", "length_penalty", "top_k", "prefix",
                       "prefix_text", "reference"} -> one recorded beam search (search_view.py)
    GET  /            the explorer page

Concurrent requests to one model are decoded together (batcher.py). Bad requests get a 4xx
status and {"error": "one line"} (503 when a model's queue is full); the server keeps serving.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from mt.common.errors import MTError
from mt.config.schema import DecodeConfig
from mt.config.tools import ServeConfig
from mt.decoding.alignment import labelled
from mt.decoding.documents import prepared, spans
from mt.decoding.translator import Translator
from mt.models import build_model, count_parameters, model_name
from mt.serving.batcher import Batcher, Busy
from mt.serving.checks import BadRequest, check_sentences, limited_decode
from mt.serving.search_view import SearchRequest, queue_search

STATIC = Path(__file__).parent / "static"


@dataclass
class Served:
    """One loaded model: its translator (our search over the PyTorch module, or CTranslate2
    over an mt.export directory), the queue that batches its requests (batcher.py), and what
    GET /models says of it, worked out once."""

    name: str
    source: str  # the checkpoint, or the export directory
    engine: str  # "torch" or "ctranslate2"
    translator: Translator
    batcher: Batcher
    description: dict = field(init=False)

    def __post_init__(self) -> None:
        config, tokenizer = self.translator.config, self.translator.tokenizer
        with torch.device("meta"):  # the architecture's size, without its weights
            parameters = count_parameters(build_model(config.model, *tokenizer.sizes()))
        self.description = {
            "name": self.name,
            "architecture": model_name(config.model),
            "engine": self.engine,
            "src_lang": config.data.src_lang,
            "tgt_lang": config.data.tgt_lang,
            "tgt_langs": self.translator.target_languages,  # several: a multilingual model
            "parameters": parameters,
            "attention": self.translator.engine.attention_names(),
            "search": self.engine == "torch",  # the explorer's search view records our search
            "decode": asdict(config.decode),
            "checkpoint": self.source,
        }


class TranslateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    sentences: list[str] = Field(min_length=1)
    model: str | None = None  # may be left out when one model is served
    beam_size: int | None = Field(None, ge=1)  # default: the model's own decode settings
    nbest: int = Field(1, ge=1)
    length_penalty: float | None = Field(None, ge=0, le=10, allow_inf_nan=False)
    attention: bool = False
    tgt_lang: str | None = None  # a multilingual model's language to translate into
    # Each entry split into sentences, translated, joined (mt/decoding/documents.py); false:
    # each entry is one sentence. An entry of several sentences has one n-best entry, the
    # joined best, and its attention per sentence.
    segment: bool = True

    @field_validator("model", "tgt_lang")
    @classmethod
    def is_text(cls, value: str | None) -> str | None:
        """ "\ud800" parses as JSON but is no text: refused here, not a 500 where it is printed."""
        if value is not None:
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as e:
                raise ValueError(f"not text ({e.reason} at {e.start})") from None
        return value


def first_problem(error: RequestValidationError) -> str:
    """Pydantic's first complaint as one line: `sentences.2: Input should be a valid string`."""
    problem = error.errors()[0]
    if problem["type"] == "json_invalid":
        return "body: not valid JSON"
    where = ".".join(str(part) for part in problem["loc"] if part != "body")
    return f"{where or 'body'}: {problem['msg']}"


def decode_settings(served: Served, request: TranslateRequest, limits: ServeConfig) -> DecodeConfig:
    """The model's decode config with the request's options; refuses what the limits forbid."""
    decode = limited_decode(
        served.translator.config.decode, request.beam_size, request.length_penalty, limits
    )
    if request.nbest > decode.beam_size:
        raise BadRequest(422, f"nbest: {request.nbest} exceeds beam_size={decode.beam_size}")
    return replace(decode, nbest=request.nbest)


def alignment_json(served: Served, src_ids: torch.Tensor, tokens: list[int]) -> dict:
    """The best hypothesis's attention: pieces and, per map, heads x target x source weights."""
    maps = served.translator.engine.attention(src_ids, tokens)
    alignment = labelled(served.translator.tokenizer, src_ids, tokens, maps)
    return {
        "source": alignment.src_pieces,
        "target": alignment.tgt_pieces,
        # Four decimals: a tenth of the bytes, and still far finer than a heatmap can show.
        "maps": {name: w.double().round(decimals=4).tolist() for name, w in alignment.maps.items()},
    }


def translation_json(served: Served, result, attention: bool) -> dict:
    """One sentence's answer: its best text, its n-best, and its attention if asked for."""
    nbest = served.translator.texts(result)
    entry = {"text": nbest[0][0], "nbest": [{"text": t, "score": s} for t, s in nbest]}
    if attention:
        entry["attention"] = (
            None if result is None else alignment_json(served, result[0], result[1][0].tokens)
        )
    return entry


def entry_json(served: Served, pairs: list, attention: bool) -> dict:
    """One entry's answer: its sentences' translations joined with the entry's spacing, and
    per sentence its source and target offsets (and attention); one sentence keeps its n-best."""
    entries = [
        (piece, None if found is None else translation_json(served, found, attention))
        for piece, found in pairs
    ]
    text, offsets = spans([(piece, e and e["text"]) for piece, e in entries])
    translated = [e for _, e in entries if e is not None]
    if len(translated) == 1:
        return {**translated[0], "text": text, "sentences": offsets}
    # A paragraph: one joined text, its score the sum of its sentences', attention by sentence.
    score = sum(e["nbest"][0]["score"] for e in translated)
    answer = {"text": text, "nbest": [{"text": text, "score": score}], "sentences": offsets}
    if attention:
        answer["attention"] = None
        for offset, entry in zip(offsets, translated, strict=True):
            offset["attention"] = entry["attention"]
    return answer


def queue_request(served: Served, request: TranslateRequest, limits: ServeConfig) -> Future:
    """The request checked and queued: the future holds its JSON answer, built on the
    model's worker thread (which alone runs the model)."""
    check_sentences(request.sentences, limits)
    decode = decode_settings(served, request, limits)
    try:
        served.translator.target_tag(request.tgt_lang)
    except MTError as refused:
        raise BadRequest(422, str(refused)) from None
    documents = prepared(served.translator, request.sentences, request.tgt_lang, request.segment)
    if len(documents.texts()) > limits.max_sentences:  # counted in sentences, as translated
        message = f"sentences: {len(documents.texts())} sentences once split"
        raise BadRequest(413, f"{message}, this server takes {limits.max_sentences}")

    def answer(found: list) -> dict:
        translations = [
            entry_json(served, pairs, request.attention) for pairs in documents.per_line(found)
        ]
        return {"model": served.name, "translations": translations}

    try:
        return served.batcher.submit(documents.texts(), decode, answer, request.tgt_lang)
    except Busy as busy:
        raise BadRequest(503, f"model {served.name!r}: {busy}") from None


def add_error_handlers(app: FastAPI, limits: ServeConfig) -> None:
    """Every refusal and failure answered as JSON {"error": one line}, and a body announced
    larger than the limit refused before it is read."""

    @app.middleware("http")
    async def bounded(request: Request, call_next):
        size = request.headers.get("content-length", "0")
        if size.isdigit() and int(size) > limits.max_body_bytes:
            message = f"body: {size} bytes, this server takes {limits.max_body_bytes}"
            return JSONResponse({"error": message}, status_code=413)
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": first_problem(error)}, status_code=422)

    @app.exception_handler(BadRequest)
    async def refused(request: Request, error: BadRequest) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=error.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        message = str(error.detail)
        if error.status_code == 413:  # a body sent in chunks, past the limit as it was read
            message = f"body: over {limits.max_body_bytes} bytes, this server takes that many"
        return JSONResponse({"error": message}, status_code=error.status_code)

    @app.exception_handler(Exception)
    async def failed(request: Request, error: Exception) -> JSONResponse:
        message = " ".join(f"{type(error).__name__}: {error}".split())
        return JSONResponse({"error": f"internal error: {message}"}, status_code=500)


def requested_model(models: list[Served], name: str | None) -> Served:
    """The model a request names (the only one when it names none), else a 422 or 404."""
    by_name = {served.name: served for served in models}
    if name is None and len(models) == 1:
        return models[0]
    if name is None:
        raise BadRequest(422, f"model: required when several are served ({', '.join(by_name)})")
    if name not in by_name:
        raise BadRequest(404, f"model: no model named {name!r} ({', '.join(by_name)})")
    return by_name[name]


def create_app(models: list[Served], limits: ServeConfig) -> FastAPI:
    """The FastAPI application serving models (names unique) within limits."""
    app = FastAPI(title="mt translation server")
    add_error_handlers(app, limits)

    @app.get("/models")
    def list_models() -> list[dict]:
        return [served.description for served in models]

    @app.get("/health")
    def health() -> dict:
        queued = {served.name: served.batcher.queued for served in models}
        return {"status": "ok", "queued_sentences": queued}

    # max_body_size: FastAPI's own limit on a body sent in chunks, counted as it is read
    # (on the route, so that its 413 reaches the handlers above and is JSON too).
    @app.post("/translate", max_body_size=limits.max_body_bytes)
    async def translate_request(request: TranslateRequest) -> dict:
        served = requested_model(models, request.model)
        # Awaited, not waited for in a thread: a thousand waiting clients hold no threads.
        return await asyncio.wrap_future(queue_request(served, request, limits))

    @app.post("/search", max_body_size=limits.max_body_bytes)
    async def search_request(request: SearchRequest) -> dict:
        served = requested_model(models, request.model)
        queued = queue_search(served.translator, served.batcher, request, limits)
        return {"model": served.name, **await asyncio.wrap_future(queued)}

    @app.get("/")
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
