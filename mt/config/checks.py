"""Checks a schema cannot express: ranges and cross-field rules, each naming its key."""

from __future__ import annotations

from mt.common.errors import MTError
from mt.common.ranges import check_ranges
from mt.config.schema import (
    LANGUAGES_OF_MULTI30K,
    Config,
    CorpusFormat,
    DataConfig,
    DecodeConfig,
    TrainerConfig,
)


def check_config(config: Config) -> None:
    """Every check of a training config; raise MTError naming the key."""
    data = config.data
    check_data(data)
    check_trainer(config.trainer)
    check_decode(config.decode)
    config.model.check()
    if config.model.tie_embeddings and not data.joint_vocab:
        raise MTError("model.tie_embeddings=true needs data.joint_vocab=true")


def check_data(data: DataConfig) -> None:
    """Ranges of data and of every training source, and the language pair."""
    check_ranges(data, "data.")
    for k, source in enumerate(data.train_sources):
        check_ranges(source, f"data.train_sources[{k}].")
    if data.src_lang == data.tgt_lang:
        raise MTError(f"data.src_lang and data.tgt_lang are both '{data.src_lang}'")
    if data.format is CorpusFormat.parallel and data.name == "multi30k":
        for key in ("src_lang", "tgt_lang"):
            if getattr(data, key) not in LANGUAGES_OF_MULTI30K:
                raise MTError(
                    f"data.{key}='{getattr(data, key)}': Multi30k has {LANGUAGES_OF_MULTI30K}"
                )


def check_trainer(trainer: TrainerConfig) -> None:
    """Ranges, a stopping rule, and the choice on valid's snapshots and penalties."""
    check_ranges(trainer, "trainer.")
    if trainer.average_last > trainer.keep_last:
        raise MTError(
            f"trainer.average_last={trainer.average_last} needs trainer.keep_last ≥ "
            f"{trainer.average_last} (the snapshots it averages)"
        )
    for penalty in trainer.length_penalties:
        if penalty < 0:
            raise MTError(f"trainer.length_penalties: {penalty} must be ≥ 0")
    if trainer.max_steps is None and trainer.max_epochs is None and trainer.max_minutes is None:
        raise MTError("set one of trainer.max_steps, trainer.max_epochs, trainer.max_minutes")


def check_decode(decode: DecodeConfig) -> None:
    """Ranges, and no more n-best hypotheses than the beam holds (when searching)."""
    check_ranges(decode, "decode.")
    if not decode.sampling and decode.nbest > decode.beam_size:
        raise MTError(f"decode.nbest={decode.nbest} exceeds decode.beam_size={decode.beam_size}")
