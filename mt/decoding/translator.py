"""A trained model as a translator of raw text, from its checkpoint alone.

    translator = Translator.from_checkpoint("outputs/transformer-de-en/checkpoints/best.pt")
    translator.translate(["Ein Hund rennt.", "Zwei Männer lachen."])
    ctranslate2_translator("exported/")          # the same API over a CTranslate2 export
                                                 # (mt.deploy.engine)

The checkpoint (or the exported directory) carries the config and the sentencepiece models,
so nothing else is needed. The engine turns source ids into n-best hypotheses: our search
over the PyTorch model, or CTranslate2; tokenising, cutting and ordering happen here, once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from mt.common.checkpoint import load_checkpoint, load_weights
from mt.common.errors import MTError
from mt.common.runtime import pick_device
from mt.common.special_ids import EOS_ID
from mt.config.checks import check_decode
from mt.config.schema import Config, DecodeConfig, DecodeOverrides
from mt.config.store import from_plain_dict
from mt.data.directions import source_languages
from mt.data.languages import language_warnings
from mt.data.tokenizer import Tokenizer
from mt.decoding.beam_history import BeamHistory
from mt.decoding.ensemble import Ensemble
from mt.decoding.inference import TorchEngine
from mt.decoding.likelihood import Likelihood, score_pairs
from mt.decoding.search import Hypothesis
from mt.models import build_model

log = logging.getLogger("mt")

# Longer inputs are cut to this many subwords (with a warning): far beyond the training
# data's lengths, and within every model's position limit including the 1.5x output allowance.
MAX_SOURCE_TOKENS = 512


# Source ids, decoding settings and target prefixes (None: none) in, n-best hypotheses per
# sentence out, in input order; each engine also has max_length, the model's positions.
EngineFn = Callable[
    [list[torch.Tensor], DecodeConfig, list[torch.Tensor] | None], list[list[Hypothesis]]
]


def load_trained(path: Path | str) -> tuple[nn.Module, Tokenizer, Config]:
    """The model (on the CPU, in eval mode), tokenizer and config a checkpoint holds."""
    return trained_from(load_checkpoint(path), path)


def trained_from(payload: dict, path: Path | str) -> tuple[nn.Module, Tokenizer, Config]:
    """The model, tokenizer and config of a loaded checkpoint (path names it in errors)."""
    config = from_plain_dict(payload["config"])
    tokenizer = Tokenizer.from_dict(payload["tokenizer"])
    model = build_model(config.model, *tokenizer.sizes())
    load_weights(model, payload["model"], path)
    return model.eval(), tokenizer, config


class Translator:
    def __init__(
        self, engine: EngineFn, tokenizer: Tokenizer, config: Config, profiles: dict | None = None
    ):
        self.engine, self.tokenizer, self.config = engine, tokenizer, config
        if profiles is not None and set(profiles) == {"src", "tgt"}:  # kept by side until 12-01
            profiles = {
                config.data.src_lang: profiles["src"],
                config.data.tgt_lang: profiles["tgt"],
            }
        self.profiles = profiles  # language -> trigram profile, when the checkpoint has them

    @property
    def target_languages(self) -> list[str]:
        """The languages this model translates into: a multilingual model's tags, or one."""
        return self.tokenizer.target_languages or [self.config.data.tgt_lang]

    def target_tag(self, tgt_lang: str | None) -> str | None:
        """The tag language for a request of tgt_lang (None: the model's only one), or one
        line when the model was not trained to produce it; None for a bilingual model."""
        produced = self.target_languages
        if tgt_lang is None and len(produced) > 1:
            raise MTError(f"tgt_lang: required, this model translates into {', '.join(produced)}")
        if tgt_lang is not None and tgt_lang not in produced:
            raise MTError(
                f"tgt_lang={tgt_lang}: the model was not trained to produce it (it translates "
                f"into {', '.join(produced)})"
            )
        return (tgt_lang or produced[0]) if self.tokenizer.target_languages else None

    def language_warnings(
        self, path: str, lines: list[str], side: str, tgt_lang: str | None = None
    ) -> list[str]:
        """Signs that lines (of path) are not in a language the model reads (side "src") or
        in the one it was asked to produce (side "tgt", tgt_lang for a multilingual model)."""
        data = self.config.data
        sources = source_languages(data) if data.directions else [data.src_lang]
        if side == "src":
            expected, opposite, role = sources, self.target_languages, "source"
        else:
            expected, opposite, role = [tgt_lang or self.target_languages[0]], sources, "target"
        others = [lang for lang in opposite if lang not in expected]
        return language_warnings(path, lines, role, expected, others, self.profiles)

    @classmethod
    def from_checkpoint(cls, path: Path | str, device: str = "auto") -> Translator:
        return cls.from_checkpoints([path], device)

    @classmethod
    def from_checkpoints(cls, paths: list[Path | str], device: str = "auto") -> Translator:
        """Several checkpoints of one vocabulary decoded as an ensemble, any mix of
        architectures; the first one's config (and decode settings) is the translator's."""
        payloads = [load_checkpoint(path) for path in paths]
        loaded = [trained_from(p, path) for p, path in zip(payloads, paths, strict=True)]
        model, tokenizer, config = loaded[0]
        for path, (_, other, _) in zip(paths[1:], loaded[1:], strict=True):
            if other.to_dict() != tokenizer.to_dict():
                raise MTError(
                    f"{path}: another vocabulary than {paths[0]}'s; an ensemble needs one"
                )
        if len(loaded) > 1:
            model = Ensemble([member for member, _, _ in loaded])
        device = pick_device(device)
        engine = TorchEngine(model.to(device), device)
        return cls(engine, tokenizer, config, payloads[0].get("languages"))

    def decoding(self, overrides: DecodeOverrides) -> DecodeConfig:
        """The checkpoint's decode settings with the keys given in overrides replaced."""
        decode = overrides.applied_to(self.config.decode)
        check_decode(decode)
        return decode

    def score(
        self,
        sources: list[str],
        references: list[str],
        max_tokens: int = 4096,
        tgt_lang: str | None = None,
    ) -> list[Likelihood]:
        """Each reference's log-probability given its source, under this PyTorch model (or
        ensemble); references are numbered by line in errors."""
        if not isinstance(self.engine, TorchEngine):
            raise MTError("scoring needs the PyTorch model: give checkpoint=, not model_dir=")
        tag = self.target_tag(tgt_lang)
        src = self.source_ids(sources, list(range(1, len(sources) + 1)), tag)
        tgt = [torch.tensor(ids, dtype=torch.long) for ids in self.tokenizer.encode_tgt(references)]
        limit = self.engine.max_length
        for number, ids in enumerate(tgt, start=1):
            if limit is not None and len(ids) + 1 > limit:
                raise MTError(
                    f"reference line {number}: {len(ids)} subwords, past the model's {limit} "
                    f"positions"
                )
        return score_pairs(self.engine.model, src, tgt, max_tokens, self.engine.device)

    def source_ids(
        self, sentences: list[str], line_numbers: list[int], tag: str | None = None
    ) -> list[torch.Tensor]:
        """Source ids, cut to MAX_SOURCE_TOKENS, each after tag's target tag (see target_tag)."""
        ids = self.tokenizer.encode_src(sentences, tag)
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

    def search(
        self,
        sentences: list[str],
        decode: DecodeConfig,
        first_line: int = 1,
        prefixes: list[str] | None = None,
        tgt_lang: str | None = None,
        history: BeamHistory | None = None,
    ) -> list[tuple[torch.Tensor, list[Hypothesis]] | None]:
        """Per sentence: its source ids and n-best hypotheses (token ids), or None for an
        empty (or all-blank) line. Each hypothesis starts with the sentence's target prefix
        when prefixes are given ("": none). first_line numbers the sentences in warnings;
        tgt_lang is a multilingual model's language to translate into; history, if given,
        records each sentence's beam search (our engine only)."""
        check_decode(decode)
        tag = self.target_tag(tgt_lang)
        results: list[tuple[torch.Tensor, list[Hypothesis]] | None] = [None] * len(sentences)
        todo = [i for i, sentence in enumerate(sentences) if sentence.strip()]
        if not todo:
            return results
        src_ids = self.source_ids([sentences[i] for i in todo], [first_line + i for i in todo], tag)
        forced = None
        if prefixes is not None:
            forced = self.prefix_ids([prefixes[i] for i in todo], [first_line + i for i in todo])
        if history is None:
            found = self.engine(src_ids, decode, forced)
        else:
            found = self.engine(src_ids, decode, forced, history.within(todo))
        for i, ids, hyps in zip(todo, src_ids, found, strict=True):
            results[i] = (ids, hyps)
        return results

    def recorded_search(
        self,
        sentence: str,
        decode: DecodeConfig | None = None,
        tgt_lang: str | None = None,
        prefix: list[int] | None = None,
        top_k: int = 0,
    ) -> tuple[BeamHistory, list[Hypothesis]]:
        """One sentence's beam search with its every step recorded (and each live hypothesis's
        top_k next tokens), and its n-best: the same search, on the same source ids, as
        translate's; prefix (target ids) is forced first, as translate's prefixes are."""
        decode = decode or self.config.decode
        self.check_recordable(decode)
        if not sentence.strip():
            raise MTError("a recorded search needs a sentence; this one is empty")
        src_ids = self.source_ids([sentence], [1], self.target_tag(tgt_lang))
        forced = None if not prefix else [torch.tensor(prefix, dtype=torch.long)]
        history = BeamHistory(1, decode.length_penalty, top_k)
        (hyps,) = self.engine(src_ids, decode, forced, history)
        return history, hyps

    def check_recordable(self, decode: DecodeConfig) -> None:
        """One line unless decode is a beam search of ours, which alone can be recorded."""
        check_decode(decode)
        if not isinstance(self.engine, TorchEngine) or decode.sampling or decode.beam_size < 2:
            raise MTError(
                "a recorded search needs our beam search (engine=torch, decode.beam_size ≥ 2, "
                "no sampling)"
            )

    def prefix_ids(self, prefixes: list[str], line_numbers: list[int]) -> list[torch.Tensor]:
        """Target prefixes as ids, each cut (with a warning) to leave the model's positions
        room for one more token: a prefix always fits."""
        ids = self.tokenizer.encode_tgt(prefixes)
        limit = self.engine.max_length
        for k, (row, number) in enumerate(zip(ids, line_numbers, strict=True)):
            if limit is not None and len(row) >= limit:
                log.warning(
                    "prefix line %d: %d subwords, keeping the first %d (the model has %d "
                    "positions)",
                    number,
                    len(row),
                    limit - 1,
                    limit,
                )
                ids[k] = row[: limit - 1]
        return [torch.tensor(row, dtype=torch.long) for row in ids]

    def translate_nbest(
        self,
        sentences: list[str],
        decode: DecodeConfig | None = None,
        first_line: int = 1,
        prefixes: list[str] | None = None,
        tgt_lang: str | None = None,
        history: BeamHistory | None = None,
    ) -> list[list[tuple[str, float]]]:
        """decode.nbest (translation, score) pairs per sentence, best first, each starting
        with its line of prefixes if given (and each search recorded into history).

        The score is the one beam search ranks by: log-probability divided by the GNMT length
        penalty. An empty (or all-blank) input gets one empty translation scored 0.
        first_line numbers the sentences in warnings (a chunk of a longer input)."""
        decode = decode or self.config.decode
        found = self.search(sentences, decode, first_line, prefixes, tgt_lang, history)
        return [self.texts(result) for result in found]

    def texts(self, found: tuple[torch.Tensor, list[Hypothesis]] | None) -> list[tuple[str, float]]:
        """search's result for one sentence as (translation, score) pairs."""
        if found is None:
            return [("", 0.0)]
        hyps = found[1]
        texts = self.tokenizer.decode_tgt([h.tokens for h in hyps])
        return [(text, h.score) for text, h in zip(texts, hyps, strict=True)]

    def translate(
        self,
        sentences: list[str],
        decode: DecodeConfig | None = None,
        first_line: int = 1,
        prefixes: list[str] | None = None,
        tgt_lang: str | None = None,
    ) -> list[str]:
        """The best translation of each sentence, in order; "" for an empty line."""
        decode = decode or self.config.decode
        one_best = replace(decode, nbest=1)
        nbests = self.translate_nbest(sentences, one_best, first_line, prefixes, tgt_lang)
        return [n[0][0] for n in nbests]
