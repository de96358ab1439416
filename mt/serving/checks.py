"""What every request to the server is checked against: its limits (ServeConfig) and text that
is text. A refusal is a BadRequest: a status and one line, answered as JSON by app.py."""

from __future__ import annotations

from dataclasses import replace

from mt.config.schema import DecodeConfig
from mt.config.tools import ServeConfig


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def check_text(where: str, text: str) -> None:
    """ "\ud800" parses as JSON but is no text: refused here, not a 500 where it is printed."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise BadRequest(422, f"{where}: not text ({e.reason} at {e.start})") from None


def check_sentences(sentences: list[str], limits: ServeConfig) -> None:
    if len(sentences) > limits.max_sentences:
        raise BadRequest(
            413, f"sentences: {len(sentences)} sentences, this server takes {limits.max_sentences}"
        )
    for k, sentence in enumerate(sentences):
        check_sentence(f"sentences.{k}", sentence, limits)


def check_sentence(where: str, sentence: str, limits: ServeConfig) -> None:
    check_text(where, sentence)
    if len(sentence) > limits.max_chars:
        raise BadRequest(
            413, f"{where}: {len(sentence)} characters, this server takes {limits.max_chars}"
        )


def limited_decode(
    decode: DecodeConfig, beam: int | None, penalty: float | None, limits: ServeConfig
) -> DecodeConfig:
    """decode with a request's beam size and length penalty (None: decode's own), refused
    past the server's max_beam_size."""
    beam = beam or decode.beam_size
    if beam > limits.max_beam_size:
        raise BadRequest(
            422, f"beam_size: {beam} exceeds this server's max_beam_size={limits.max_beam_size}"
        )
    penalty = decode.length_penalty if penalty is None else penalty
    return replace(decode, beam_size=beam, length_penalty=penalty)
