"""A trained model as a translator of raw text, from its checkpoint alone.

    translator = Translator.from_checkpoint("outputs/transformer-de-en/checkpoints/best.pt")
    translator.translate(["Ein Hund rennt.", "Zwei Männer lachen."])

The checkpoint carries the config and the sentencepiece models, so nothing else is needed.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from mt.checkpoint import load_checkpoint, load_weights
from mt.config import Config, DecodeConfig, check_decode, from_plain_dict
from mt.inference import decode_ids, pick_device
from mt.models import build_model
from mt.tokenizer import EOS_ID, Tokenizer

log = logging.getLogger("mt")

# Longer inputs are cut to this many subwords (with a warning): far beyond the training
# data's lengths, and within every model's position limit including the 1.5x output allowance.
MAX_SOURCE_TOKENS = 512


class Translator:
    def __init__(self, model: nn.Module, tokenizer: Tokenizer, config: Config, device):
        self.model, self.tokenizer, self.config = model, tokenizer, config
        self.device = torch.device(device)

    @classmethod
    def from_checkpoint(cls, path: Path | str, device: str = "auto") -> Translator:
        payload = load_checkpoint(path)
        config = from_plain_dict(payload["config"])
        tokenizer = Tokenizer.from_dict(payload["tokenizer"])
        model = build_model(config.model, tokenizer)
        load_weights(model, payload["model"], path)
        device = pick_device(device)
        return cls(model.to(device).eval(), tokenizer, config, device)

    def source_ids(self, sentences: list[str], line_numbers: list[int]) -> list[torch.Tensor]:
        ids = self.tokenizer.encode_src(sentences)
        for k, (row, number) in enumerate(zip(ids, line_numbers, strict=True)):
            if len(row) > MAX_SOURCE_TOKENS:
                log.warning(
                    "input line %d: %d subwords, translating the first %d",
                    number,
                    len(row),
                    MAX_SOURCE_TOKENS,
                )
                ids[k] = row[: MAX_SOURCE_TOKENS - 1] + [EOS_ID]
        return [torch.tensor(row, dtype=torch.long) for row in ids]

    def translate_nbest(
        self, sentences: list[str], decode: DecodeConfig | None = None, first_line: int = 1
    ) -> list[list[tuple[str, float]]]:
        """decode.nbest (translation, score) pairs per sentence, best first.

        The score is the one beam search ranks by: log-probability divided by the GNMT length
        penalty. An empty (or all-blank) input gets one empty translation scored 0.
        first_line numbers the sentences in warnings (a chunk of a longer input)."""
        decode = decode or self.config.decode
        check_decode(decode)
        results: list[list[tuple[str, float]]] = [[("", 0.0)] for _ in sentences]
        todo = [i for i, sentence in enumerate(sentences) if sentence.strip()]
        if not todo:
            return results
        nbest = decode_ids(
            self.model,
            self.source_ids([sentences[i] for i in todo], [first_line + i for i in todo]),
            decode,
            self.device,
        )
        for i, hyps in zip(todo, nbest, strict=True):
            texts = self.tokenizer.decode_tgt([h.tokens for h in hyps])
            results[i] = [(text, h.score) for text, h in zip(texts, hyps, strict=True)]
        return results

    def translate(
        self, sentences: list[str], decode: DecodeConfig | None = None, first_line: int = 1
    ) -> list[str]:
        """The best translation of each sentence, in order; "" for an empty line."""
        decode = decode or self.config.decode
        one_best = DecodeConfig(**{**decode.__dict__, "nbest": 1})
        return [n[0][0] for n in self.translate_nbest(sentences, one_best, first_line)]
