"""Sentencepiece subword models: training on the training split, special ids, (de)serialising."""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from functools import cached_property

import sentencepiece as spm

from mt.common.errors import MTError
from mt.common.special_ids import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from mt.config.schema import DataConfig
from mt.data.directions import tag, target_languages


def train_sentencepiece(sentences: Iterable[str], cfg: DataConfig) -> bytes:
    """Train a sentencepiece model in memory and return its serialised proto."""
    model = io.BytesIO()
    try:
        train_model(sentences, cfg, model)
    except RuntimeError as e:  # sentencepiece reports bad settings as RuntimeError
        reason = str(e).split("] ", 1)[-1].split(". Increase")[0]
        raise MTError(
            f"data.vocab_size={cfg.vocab_size}: sentencepiece cannot train ({reason})"
        ) from None
    return model.getvalue()


def train_model(sentences: Iterable[str], cfg: DataConfig, model: io.BytesIO) -> None:
    sample = {}
    if cfg.spm_sample is not None:  # a large corpus: a seeded random sample is enough
        spm.set_random_generator_seed(1)
        sample = {"input_sentence_size": cfg.spm_sample, "shuffle_input_sentence": True}
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        vocab_size=cfg.vocab_size,
        model_type=cfg.subword_type.value,
        character_coverage=1.0,
        pad_id=PAD_ID,
        unk_id=UNK_ID,
        bos_id=BOS_ID,
        eos_id=EOS_ID,
        # Small corpora cannot fill a large vocabulary; take what the data supports.
        hard_vocab_limit=False,
        num_threads=os.cpu_count() or 1,
        minloglevel=1,  # sentencepiece's warnings (e.g. on its sample) reach the log
        # A multilingual run's target tags: pieces no text encodes to, nor decodes from.
        control_symbols=[tag(lang) for lang in target_languages(cfg)],
        **sample,
    )


class Tokenizer:
    """Source and target subword models (the same one when the vocabulary is joint)."""

    def __init__(self, src_model: bytes, tgt_model: bytes):
        self.src_model, self.tgt_model = src_model, tgt_model
        self.src = spm.SentencePieceProcessor(model_proto=src_model)
        self.tgt = spm.SentencePieceProcessor(model_proto=tgt_model)

    def __reduce__(self):  # worker processes rebuild it from the serialised models
        return Tokenizer, (self.src_model, self.tgt_model)

    @property
    def joint(self) -> bool:
        return self.src_model == self.tgt_model

    @property
    def src_vocab_size(self) -> int:
        return self.src.get_piece_size()

    @property
    def tgt_vocab_size(self) -> int:
        return self.tgt.get_piece_size()

    def sizes(self) -> tuple[int, int, bool]:
        """(source vocabulary, target vocabulary, joint): what build_model needs to know."""
        return self.src_vocab_size, self.tgt_vocab_size, self.joint

    def encode_src(self, sentences: list[str], tgt_lang: str | None = None) -> list[list[int]]:
        """Source ids, each sentence ending in EOS (the encoder's end marker) and, given the
        language to translate into (a multilingual model's), starting with its tag."""
        first = [] if tgt_lang is None else [self.tag_id(tgt_lang)]
        return [first + ids + [EOS_ID] for ids in self.src.encode(sentences)]

    def tag_id(self, lang: str) -> int:
        """The id of lang's target tag; one line when the vocabulary has none."""
        piece = tag(lang)
        found = self.src.piece_to_id(piece)
        if found == UNK_ID or not self.src.is_control(found):
            raise MTError(f"tgt_lang={lang}: the vocabulary has no {piece} tag for it")
        return found

    @cached_property
    def target_languages(self) -> list[str]:
        """The languages whose tags the vocabulary holds: a multilingual model's targets."""
        ids = range(self.src_vocab_size)
        controls = (self.src.id_to_piece(i) for i in ids if self.src.is_control(i))
        return [p[2:-1] for p in controls if p.startswith("<2") and p.endswith(">")]

    def encode_tgt(self, sentences: list[str]) -> list[list[int]]:
        """Target ids without BOS/EOS; batching adds them."""
        return self.tgt.encode(sentences)

    def decode_tgt(self, ids: list[list[int]]) -> list[str]:
        """Detokenised target text."""
        return self.tgt.decode(ids)

    def to_dict(self) -> dict[str, bytes]:
        return {"src": self.src_model, "tgt": self.tgt_model}

    @classmethod
    def from_dict(cls, models: dict[str, bytes]) -> Tokenizer:
        return cls(models["src"], models["tgt"])
