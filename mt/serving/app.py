"""The translation server: models loaded once, a JSON API over the existing search, and the
attention explorer page (mt/serving/static/) that shows them side by side.

    GET  /models      what is loaded: name, architecture, languages, attention maps, defaults
    POST /translate   {"sentences": [...], "model": NAME, "beam_size", "nbest",
                       "length_penalty", "attention": bool} -> translations, n-best, attention
    GET  /            the explorer page

Bad requests get a 4xx status and {"error": "one line"}; the server keeps serving.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from mt.config.schema import DecodeConfig
from mt.decoding.alignment import align
from mt.decoding.translator import Translator
from mt.models import count_parameters, model_name

STATIC = Path(__file__).parent / "static"


@dataclass
class Served:
    """One loaded model: its translator (our search over the PyTorch module, whose attention
    maps the explorer draws) and what GET /models says of it, worked out once."""

    name: str
    checkpoint: str
    translator: Translator
    lock: threading.Lock = field(default_factory=threading.Lock)  # one request at a time
    description: dict = field(init=False)

    def __post_init__(self) -> None:
        config = self.translator.config
        probe = torch.tensor([[4, 2]], device=self.device)  # any source; only names are read
        with torch.no_grad():
            maps = list(self.model.attention_maps(probe, probe))
        self.description = {
            "name": self.name,
            "architecture": model_name(config.model),
            "src_lang": config.data.src_lang,
            "tgt_lang": config.data.tgt_lang,
            "parameters": count_parameters(self.model),
            "attention": maps,
            "decode": asdict(config.decode),
            "checkpoint": self.checkpoint,
        }

    @property
    def model(self) -> nn.Module:
        return self.translator.engine.model

    @property
    def device(self) -> torch.device:
        return self.translator.engine.device


@dataclass
class Limits:
    max_sentences: int = 64
    max_chars: int = 2000
    max_beam_size: int = 16
    max_body_bytes: int = 1_000_000


class TranslateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    sentences: list[str] = Field(min_length=1)
    model: str | None = None  # may be left out when one model is served
    beam_size: int | None = Field(None, ge=1)  # default: the model's own decode settings
    nbest: int = Field(1, ge=1)
    length_penalty: float | None = Field(None, ge=0, le=10, allow_inf_nan=False)
    attention: bool = False


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def first_problem(error: RequestValidationError) -> str:
    """Pydantic's first complaint as one line: `sentences.2: Input should be a valid string`."""
    problem = error.errors()[0]
    if problem["type"] == "json_invalid":
        return "body: not valid JSON"
    where = ".".join(str(part) for part in problem["loc"] if part != "body")
    return f"{where or 'body'}: {problem['msg']}"


def decode_settings(served: Served, request: TranslateRequest, limits: Limits) -> DecodeConfig:
    """The model's decode config with the request's options; refuses what the limits forbid."""
    decode = served.translator.config.decode
    beam = request.beam_size or decode.beam_size
    if beam > limits.max_beam_size:
        raise BadRequest(
            422, f"beam_size: {beam} exceeds this server's max_beam_size={limits.max_beam_size}"
        )
    if request.nbest > beam:
        raise BadRequest(422, f"nbest: {request.nbest} exceeds beam_size={beam}")
    penalty = decode.length_penalty if request.length_penalty is None else request.length_penalty
    return DecodeConfig(
        **{**asdict(decode), "beam_size": beam, "nbest": request.nbest, "length_penalty": penalty}
    )


def check_sentences(sentences: list[str], limits: Limits) -> None:
    if len(sentences) > limits.max_sentences:
        raise BadRequest(
            413, f"sentences: {len(sentences)} sentences, this server takes {limits.max_sentences}"
        )
    for k, sentence in enumerate(sentences):
        try:
            sentence.encode("utf-8")
        except UnicodeEncodeError as e:  # "\ud800" parses as JSON but is no text
            raise BadRequest(422, f"sentences.{k}: not text ({e.reason} at {e.start})") from None
        if len(sentence) > limits.max_chars:
            raise BadRequest(
                413,
                f"sentences.{k}: {len(sentence)} characters, this server takes {limits.max_chars}",
            )


def alignment_json(served: Served, src_ids: torch.Tensor, tokens: list[int]) -> dict:
    """The best hypothesis's attention: pieces and, per map, heads x target x source weights."""
    alignment = align(served.model, served.translator.tokenizer, src_ids, tokens, served.device)
    return {
        "source": alignment.src_pieces,
        "target": alignment.tgt_pieces,
        # Four decimals: a tenth of the bytes, and still far finer than a heatmap can show.
        "maps": {name: w.round(decimals=4).tolist() for name, w in alignment.maps.items()},
    }


def translate(served: Served, request: TranslateRequest, limits: Limits) -> dict:
    check_sentences(request.sentences, limits)
    decode = decode_settings(served, request, limits)
    with served.lock:
        found = served.translator.search(request.sentences, decode)
        translations = []
        for result in found:
            nbest = served.translator.texts(result)
            entry = {"text": nbest[0][0], "nbest": [{"text": t, "score": s} for t, s in nbest]}
            if request.attention:
                entry["attention"] = (
                    None
                    if result is None
                    else alignment_json(served, result[0], result[1][0].tokens)
                )
            translations.append(entry)
    return {"model": served.name, "translations": translations}


def create_app(models: list[Served], limits: Limits) -> FastAPI:
    """The FastAPI application serving models (names unique) within limits."""
    by_name = {served.name: served for served in models}
    app = FastAPI(title="mt translation server")

    @app.middleware("http")
    async def bounded(request: Request, call_next):
        """A body announced larger than the limit is refused before it is read."""
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

    @app.get("/models")
    def list_models() -> list[dict]:
        return [served.description for served in models]

    @app.post("/translate")
    def translate_request(request: TranslateRequest) -> dict:  # a worker thread, not the loop
        name = request.model or (models[0].name if len(models) == 1 else None)
        if name is None:
            raise BadRequest(422, f"model: required when several are served ({', '.join(by_name)})")
        if name not in by_name:
            raise BadRequest(404, f"model: no model named {name!r} ({', '.join(by_name)})")
        return translate(by_name[name], request, limits)

    @app.get("/")
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
