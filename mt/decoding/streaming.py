"""Translating a stream of lines (stdin or a file, plain or .gz) in chunks, so a pipe
streams: each chunk decoded in one stream of batches (segmented into sentences, or n-best
lists with optional forced prefixes), written line for line (mt.translate)."""

from __future__ import annotations

import gzip
import itertools
import json
import logging
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import BinaryIO, TextIO

from mt.common.errors import MTError
from mt.config.tools import TranslateConfig
from mt.data.readers import decode_line, iter_lines
from mt.decoding.beam_history import BeamHistory
from mt.decoding.documents import translate_lines
from mt.decoding.translator import Translator

log = logging.getLogger("mt")

# The longest line translated (a long paragraph; 1.5 MB of a line is refused in one line, not
# decoded for an hour): about 15,000 words, a thousand sentences.
MAX_LINE_CHARS = 100_000


def open_file(path: Path, mode: str, stack: ExitStack) -> BinaryIO | TextIO:
    """Plain or .gz, by the name; mode "rb" (input, decoded line by line) or "w" (output)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    text = {"encoding": "utf-8", "newline": "\n"} if mode == "w" else {}
    try:
        return stack.enter_context(opener(path, mode if mode == "rb" else "wt", **text))
    except OSError as e:
        raise MTError(f"{path}: cannot open ({e.strerror or e})") from None


def chunks(lines: Iterator[bytes], size: int, source: str) -> Iterator[list[str]]:
    """Lists of up to size lines without line endings; undecodable or unreadable input (a
    truncated .gz) named by its file and line."""
    numbered = enumerate(lines, start=1)
    try:
        while chunk := [
            check_length(decode_line(raw, source, n), source, n)
            for n, raw in itertools.islice(numbered, size)
        ]:
            yield chunk
    except (OSError, EOFError) as e:
        raise MTError(f"{source}: cannot read it ({e})") from None


def check_length(line: str, source: str, number: int) -> str:
    """line, or one error naming it when it is longer than MAX_LINE_CHARS."""
    if len(line) > MAX_LINE_CHARS:
        raise MTError(
            f"{source}: line {number}: {len(line)} characters, past the {MAX_LINE_CHARS} a "
            "line may have; break the text into lines (paragraphs)"
        )
    return line


def mismatch(prefix: str, prefixes: int, source: str, lines: int | str) -> MTError:
    return MTError(f"prefix={prefix} has {prefixes} lines but {source} has {lines}")


def read_prefixes(cfg: TranslateConfig) -> list[str] | None:
    """prefix=FILE's lines, one target prefix per input line; against input=FILE they are
    counted before anything is decoded (from stdin, translate_stream counts as it reads)."""
    if cfg.prefix is None:
        return None
    prefixes = list(iter_lines(Path(cfg.prefix)))
    if cfg.input is not None:
        lines = sum(1 for _ in iter_lines(Path(cfg.input)))
        if lines != len(prefixes):
            raise mismatch(cfg.prefix, len(prefixes), cfg.input, lines)
    return prefixes


def write_records(record: TextIO, history: BeamHistory, chunk: list[str], first: int) -> None:
    """One JSON line per line of chunk (numbered from first, as n-best lists are): its
    recorded search, as VisTools draws it and step by step."""
    for k, line in enumerate(chunk):
        searched = {"line": first + k, "source": line, **history.vistools(k)}
        record.write(json.dumps({**searched, "steps": history.as_json(k)}) + "\n")


def translate_stream(
    translator: Translator,
    cfg: TranslateConfig,
    source: BinaryIO,
    sink: TextIO,
    name: str,
    prefixes: list[str] | None = None,
    record: TextIO | None = None,
) -> int:
    """Translate every line of source into sink, each output starting with its line of
    prefixes if given, each line's search recorded into record if given (one chunk's trees
    in memory at a time); returns the number of input lines."""
    decode = translator.decoding(cfg.decode)
    done = 0
    for chunk in chunks(iter(source), cfg.lines_per_batch, name):
        if done == 0:  # before the first decode: a wrong language is seen in the first lines
            for warning in translator.language_warnings(name, chunk, "src"):
                log.warning("warning: %s", warning)
        forced = None if prefixes is None else prefixes[done : done + len(chunk)]
        if forced is not None and len(forced) < len(chunk):
            raise mismatch(cfg.prefix, len(prefixes), name, "more")
        if decode.nbest == 1 and forced is None and record is None:
            translated = translate_lines(
                translator, chunk, decode, done + 1, cfg.tgt_lang, cfg.segment, cfg.src_lang
            )
            sink.writelines(line + "\n" for line in translated)
        else:
            history = None if record is None else BeamHistory(len(chunk), decode.length_penalty)
            nbests = translator.translate_nbest(
                chunk, decode, done + 1, forced, cfg.tgt_lang, history
            )
            if history is not None:
                write_records(record, history, chunk, done)
            for i, nbest in enumerate(nbests, start=done):
                if decode.nbest == 1:
                    sink.write(nbest[0][0] + "\n")
                else:
                    sink.writelines(f"{i}\t{score:.4f}\t{text}\n" for text, score in nbest)
        sink.flush()
        done += len(chunk)
    if prefixes is not None and done != len(prefixes):
        raise mismatch(cfg.prefix, len(prefixes), name, done)
    return done
