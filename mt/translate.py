"""`python -m mt.translate checkpoint=PATH`: raw text in, translations out, line for line.

Reads stdin (or input=FILE, plain or .gz) in chunks of lines_per_batch lines, so a pipe
streams, and writes one translation per input line to stdout (or output=FILE); an empty
input line gives an empty output line. With decode.nbest=N > 1 every input line gives N
lines in the format

    LINE<TAB>SCORE<TAB>TRANSLATION

LINE counts input lines from 0; SCORE is the beam's ranking score, log-probability divided
by the length penalty (higher is better); the N lines of one input come best first.
"""

from __future__ import annotations

import gzip
import itertools
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from typing import TextIO

import hydra
from omegaconf import DictConfig

from mt.config import TranslateConfig, check_decode, model_source, register_configs, to_object
from mt.errors import MTError
from mt.translator import Translator

register_configs()


def open_text(path: str, mode: str, stack: ExitStack) -> TextIO:
    opener = gzip.open if path.endswith(".gz") else open
    try:
        return stack.enter_context(opener(path, mode + "t", encoding="utf-8", newline="\n"))
    except OSError as e:
        raise MTError(f"{path}: cannot open ({e.strerror or e})") from None


def chunks(lines: Iterator[str], size: int, source: str) -> Iterator[list[str]]:
    """Lists of up to size lines without line endings; undecodable input named by line."""
    number = 0
    while True:
        chunk = []
        try:
            for line in itertools.islice(lines, size):
                number += 1
                chunk.append(line.rstrip("\r\n"))
        except UnicodeDecodeError as e:
            raise MTError(f"{source}:{number + 1}: not valid UTF-8 ({e.reason})") from None
        if not chunk:
            return
        yield chunk


def translate_stream(
    translator: Translator, cfg: TranslateConfig, source: TextIO, sink: TextIO, name: str
) -> int:
    """Translate every line of source into sink; returns the number of input lines."""
    done = 0
    for chunk in chunks(iter(source), cfg.lines_per_batch, name):
        if cfg.decode.nbest == 1:
            translations = translator.translate(chunk, cfg.decode, first_line=done + 1)
            sink.writelines(t + "\n" for t in translations)
        else:
            nbests = translator.translate_nbest(chunk, cfg.decode, first_line=done + 1)
            for i, nbest in enumerate(nbests, start=done):
                sink.writelines(f"{i}\t{score:.4f}\t{text}\n" for text, score in nbest)
        sink.flush()
        done += len(chunk)
    return done


@hydra.main(version_base="1.3", config_path="../configs", config_name="translate")
def main(cfg: DictConfig) -> None:
    try:
        config: TranslateConfig = to_object(cfg)
        check_decode(config.decode)
        source = model_source(config.checkpoint, config.engine, config.model_dir)
        # Load first: a bad checkpoint must not leave an emptied output file behind.
        translator = Translator.load(config.engine, source, config.device)
        with ExitStack() as stack:
            if config.input is None:
                source, name = sys.stdin, "<stdin>"
                sys.stdin.reconfigure(encoding="utf-8")
            else:
                source, name = open_text(config.input, "r", stack), config.input
            sink = sys.stdout if config.output is None else open_text(config.output, "w", stack)
            translate_stream(translator, config, source, sink, name)
    except MTError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
