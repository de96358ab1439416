"""Typed configuration schemas of the command-line tools that use a trained model:
mt.evaluate, mt.translate, mt.distill, mt.export and mt.serve (registered by
mt.config.store.register_configs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar

from omegaconf import MISSING

from mt.common.errors import MTError
from mt.common.ranges import BEAM, TOKENS, Rule, within
from mt.config.schema import DecodeOverrides, Engine


class Quantization(Enum):
    float32 = "float32"
    int8 = "int8"  # int8 weights, int8 matrix products where CTranslate2 has them
    int8_float32 = "int8_float32"  # int8 weights, float32 for the other layers


class EvalSplit(Enum):
    valid = "valid"
    test = "test"


@dataclass
class DecodingTool:
    """What every tool that decodes with a trained model takes: the model (a checkpoint, an
    ensemble [A.pt,B.pt] or a CTranslate2 export), the device and decode overrides."""

    checkpoint: Any = None  # engine=torch: the trained model, or [A.pt,B.pt] as an ensemble
    engine: Engine = Engine.torch
    model_dir: str | None = None  # engine=ctranslate2: the directory mt.export wrote
    device: str = "auto"
    decode: DecodeOverrides = field(default_factory=DecodeOverrides)  # null: the checkpoint's


@dataclass
class EvaluateConfig(DecodingTool):
    """`python -m mt.evaluate checkpoint=PATH [split=valid | src=FILE ref=FILE] [decode.*]`."""

    split: EvalSplit = EvalSplit.test  # a split of the data the checkpoint was trained on
    src: str | None = None  # or any parallel pair: source lines (plain or .gz) ...
    ref: str | None = None  # ... and their reference translations
    data_root: str | None = None  # where the checkpoint's corpus lies now, if it has moved
    hyps: str | None = None  # default: beside the checkpoint or model_dir, <name>.<split>.hyp
    metrics: str | None = None  # default: the hyps path with .metrics.json
    # A multilingual model's direction: the language to produce and, for split=, the
    # language of the source side read (default: the checkpoint's data.src_lang)
    tgt_lang: str | None = None
    src_lang: str | None = None
    # Test sets are a sentence per line: split into sentences only lines that are paragraphs
    # (true), as mt.translate does; a sentence too long for the model is split either way.
    segment: bool = False
    # Beam sizes to tell search errors from model errors at (e.g. [1,5,20]): per beam, the
    # share of outputs the model scores below the reference (mt/evaluation/search_errors.py).
    search_errors: list[int] = field(default_factory=list)

    RANGES: ClassVar[dict[str, Rule]] = {
        "search_errors": (lambda beams: all(BEAM[0](b) for b in beams), f"each {BEAM[1]}")
    }


@dataclass
class TranslateConfig(DecodingTool):
    """`python -m mt.translate checkpoint=PATH [input=FILE] [output=FILE] [decode.*]`."""

    input: str | None = None  # default: stdin
    output: str | None = None  # default: stdout
    prefix: str | None = None  # a target prefix per input line that each output starts with
    # Each line's beam search, recorded: one JSON line per input line (VisTools' beam-tree
    # shape and every step's candidates; mt/decoding/beam_history.py).
    record: str | None = None
    lines_per_batch: int = 1000  # read this many lines, translate them, write them
    tgt_lang: str | None = None  # a multilingual model's language to translate into
    # Split each line into sentences, translate them, join them (mt/decoding/documents.py);
    # false: each line is one sentence already. src_lang: the segmenter's language (default:
    # the model's source language).
    segment: bool = True
    src_lang: str | None = None

    RANGES: ClassVar[dict[str, Rule]] = {"lines_per_batch": within(1, 10**7)}


@dataclass
class DistillConfig(DecodingTool):
    """`python -m mt.distill checkpoint=PATH out=DIR [input=FILE] [decode.*]`."""

    out: str = MISSING  # the distilled corpus's directory
    input: str | None = None  # default: the teacher's own training sources
    data_root: str | None = None  # where the teacher's corpus lies now, if it has moved
    shard_lines: int = 5000  # lines decoded and written whole at a time: what a kill loses

    RANGES: ClassVar[dict[str, Rule]] = {"shard_lines": within(1, 10**7)}


@dataclass
class ScoreConfig:
    """`python -m mt.score checkpoint=PATH src=FILE ref=FILE [output=FILE]`."""

    checkpoint: Any = MISSING  # the trained model, or [A.pt,B.pt] as an ensemble
    src: str = MISSING  # source lines (plain or .gz) ...
    ref: str = MISSING  # ... and the translations to score, line for line
    output: str | None = None  # default: stdout (the summary then goes to stderr)
    max_tokens: int = 4096  # source or target tokens per batch
    tgt_lang: str | None = None  # a multilingual model's language of ref
    device: str = "auto"

    RANGES: ClassVar[dict[str, Rule]] = {"max_tokens": TOKENS}


@dataclass
class ExportConfig:
    """`python -m mt.export checkpoint=PATH out=DIR [quantization=int8]`."""

    checkpoint: str = MISSING
    out: str = MISSING  # the CTranslate2 model directory to create
    quantization: Quantization = Quantization.float32
    overwrite: bool = False  # replace an existing out directory


@dataclass
class ServeConfig:
    """`python -m mt.serve checkpoints=[A.pt,B.pt,EXPORT_DIR] [host=127.0.0.1] [port=8000]`."""

    # Checkpoints (our search) or directories written by mt.export (CTranslate2).
    checkpoint: str | None = None  # one model ...
    checkpoints: list[str] = field(default_factory=list)  # ... or several, side by side
    host: str = "127.0.0.1"
    port: int = 8000
    device: str = "auto"
    max_sentences: int = 64  # per request
    max_chars: int = 2000  # per sentence
    max_beam_size: int = 16
    max_body_bytes: int = 1_000_000  # a request body larger than this gets 413 unread
    # Concurrent requests share decoding batches of this many decoder rows x source tokens:
    # smaller answers a small request sooner behind a large one, larger batches more at once.
    batching: bool = True  # false: one whole request at a time, as before batching
    batch_tokens: int = 1024
    max_queued: int = 1024  # sentences waiting per model; past it a request gets 503
    # Slow or stalled clients: a connection whose request (headers and body) has not all
    # arrived this many seconds after it opened, or after its previous answer, is closed;
    # and a request arriving while max_connections are open gets 503 at once.
    read_timeout_s: float = 30.0
    max_connections: int = 1000

    RANGES: ClassVar[dict[str, Rule]] = {
        **dict.fromkeys(("max_sentences", "max_queued"), within(1, 10**6)),
        "max_chars": within(1, 10**6),
        "max_beam_size": BEAM,
        "max_body_bytes": within(1, 2**30),
        "batch_tokens": TOKENS,
        "read_timeout_s": ((lambda value: 0 < value <= 3600), "must be in (0, 3600]"),
        "max_connections": within(1, 10**6),
        "port": ((lambda value: 0 <= value <= 65535), "must be in [0, 65535]"),
    }


TOOL_SCHEMAS = {
    "evaluate": EvaluateConfig,
    "translate": TranslateConfig,
    "distill": DistillConfig,
    "score": ScoreConfig,
    "export": ExportConfig,
    "serve": ServeConfig,
}


def model_source(checkpoint: Any, engine: Engine, model_dir: str | None) -> tuple[str, list[Path]]:
    """The key and the paths a tool reads its model from: checkpoint= (torch; a list of
    checkpoints decodes them as an ensemble) or model_dir= (ctranslate2)."""
    wanted, other = (
        ("checkpoint", "model_dir") if engine is Engine.torch else ("model_dir", "checkpoint")
    )
    given = {"checkpoint": checkpoint, "model_dir": model_dir}
    if given[wanted] is None:
        raise MTError(f"engine={engine.value} needs {wanted}=PATH")
    if given[other] is not None:
        raise MTError(f"engine={engine.value} reads {wanted}=, not {other}=")
    value = given[wanted]
    paths = [Path(p) for p in value] if isinstance(value, list) else [Path(value)]
    if not paths:
        raise MTError(f"{wanted}=[]: no model to decode with")
    return wanted, paths


def model_inputs(key: str, paths: list[Path]) -> dict[str, Path]:
    """The model files by the name the user gave them: checkpoint=, or checkpoint[k]=."""
    return {key: paths[0]} if len(paths) == 1 else {f"{key}[{k}]": p for k, p in enumerate(paths)}
