"""Checks a schema cannot express: ranges and cross-field rules, each naming its key."""

from __future__ import annotations

from mt.common.errors import MTError
from mt.common.ranges import EPOCH_WEIGHT, check_ranges
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
    positions = getattr(config.model, "max_positions", None)  # the Transformer's table
    if positions is not None and data.max_len > positions:
        raise MTError(
            f"data.max_len={data.max_len} exceeds model.max_positions={positions}: a pair that "
            "long would stop training when it came; lower data.max_len or raise max_positions"
        )
    if config.model.tie_embeddings and not data.joint_vocab:
        raise MTError("model.tie_embeddings=true needs data.joint_vocab=true")


def trainer_warnings(trainer: TrainerConfig) -> list[str]:
    """Settings that run but cannot do what they say, for a warning at start-up: a run
    shorter than its warm-up, or than the validations its choice of model rests on."""
    steps, found = trainer.max_steps, []
    if steps is None:
        return found
    if steps < trainer.warmup_steps:
        found.append(
            f"trainer.max_steps={steps} < trainer.warmup_steps={trainer.warmup_steps}: the "
            f"learning rate never reaches its peak ({trainer.lr:g}); lower warmup_steps"
        )
    validations = -(-steps // trainer.valid_every)  # every valid_every steps, and the last
    if validations == 1:
        found.append(
            f"trainer.max_steps={steps} ≤ trainer.valid_every={trainer.valid_every}: one "
            "validation, at the last step, so best.pt is simply the last weights"
        )
    if trainer.average_last > validations:
        found.append(
            f"trainer.average_last={trainer.average_last}, but trainer.max_steps={steps} "
            f"gives {validations} validations (trainer.valid_every={trainer.valid_every}): "
            f"the mean is of {validations} snapshots"
        )
    return found


def check_data(data: DataConfig) -> None:
    """Ranges of data and of every training source, and the language pair."""
    check_ranges(data, "data.")
    for k, source in enumerate(data.train_sources):
        check_ranges(source, f"data.train_sources[{k}].")
    check_directions(data)
    check_download_url(data.download_url)
    if data.src_lang == data.tgt_lang and not data.directions:
        raise MTError(f"data.src_lang and data.tgt_lang are both '{data.src_lang}'")
    if data.format is CorpusFormat.parallel and data.name == "multi30k":
        named = {f"data.{key}": getattr(data, key) for key in ("src_lang", "tgt_lang")}
        named.update({f"data.directions: {d}": lang for d in data.directions for lang in parse(d)})
        for key, lang in named.items():
            if lang not in LANGUAGES_OF_MULTI30K:
                raise MTError(f"{key}: '{lang}', but Multi30k has {LANGUAGES_OF_MULTI30K}")


def check_download_url(url: str) -> None:
    """A URL template with {file} and no other field, so that no download fails on it."""
    try:
        filled = url.format(file="train.de.gz")
    except (KeyError, IndexError, ValueError):
        filled = url
    if filled == url:
        raise MTError(f"data.download_url={url}: needs {{file}} (and no other {{...}})")


def parse(direction: str) -> tuple[str, str]:
    """ "de-en" -> ("de", "en"), or one line naming the bad entry."""
    src, sep, tgt = direction.partition("-")
    if not (sep and src and tgt and src != tgt and "-" not in tgt):
        raise MTError(f"data.directions: {direction!r} is not SRC-TGT of two languages (de-en)")
    return src, tgt


def check_directions(data: DataConfig) -> None:
    """Directions well formed, unique, and usable with the rest of data."""
    if not data.directions:
        if data.direction_weights:
            raise MTError("data.direction_weights: given without data.directions")
        return
    for direction in data.directions:
        parse(direction)
    if len(set(data.directions)) != len(data.directions):
        raise MTError(f"data.directions: {data.directions} names a direction twice")
    if data.train_sources:
        raise MTError("data.directions and data.train_sources: choose one")
    if data.format is CorpusFormat.tsv:
        raise MTError("data.directions: a tsv corpus has no languages to choose from")
    if not data.joint_vocab:
        raise MTError("data.directions: a multilingual run needs data.joint_vocab=true")
    check_direction_weights(data)


def check_direction_weights(data: DataConfig) -> None:
    """One weight per direction, each an allowed epoch weight."""
    weights = data.direction_weights
    if weights and len(weights) != len(data.directions):
        raise MTError(
            f"data.direction_weights: {weights} needs one weight per direction "
            f"({len(data.directions)})"
        )
    allowed, rule = EPOCH_WEIGHT
    for k, weight in enumerate(weights):
        if not allowed(weight):
            raise MTError(f"data.direction_weights[{k}]={weight}: {rule}")


# What a run started from another (trainer.init_from) may keep of it besides the weights,
# and the groups of parameters trainer.freeze can name (mt.training.parent.in_group).
INIT_KEEPABLE = ("optimizer", "schedule")
FREEZABLE = ("embeddings", "encoder", "decoder")


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
    if trainer.resume and trainer.init_from:
        raise MTError(
            "trainer.resume=true continues this run; trainer.init_from starts a new one from "
            "another: give one of them"
        )
    check_lineage(trainer)


def check_lineage(trainer: TrainerConfig) -> None:
    """What a run started from another keeps of it, and which parameter groups it freezes."""
    for kept in trainer.init_keep:
        if kept not in INIT_KEEPABLE:
            raise MTError(f"trainer.init_keep: {kept!r} is not one of {', '.join(INIT_KEEPABLE)}")
    for group in trainer.freeze:
        if group not in FREEZABLE:
            raise MTError(f"trainer.freeze: {group!r} is not one of {', '.join(FREEZABLE)}")
    if trainer.init_keep and not trainer.init_from:
        raise MTError("trainer.init_keep needs trainer.init_from (the run whose state it keeps)")


def check_decode(decode: DecodeConfig) -> None:
    """Ranges, and no more n-best hypotheses than the beam holds (when searching)."""
    check_ranges(decode, "decode.")
    if not decode.sampling and decode.nbest > decode.beam_size:
        raise MTError(f"decode.nbest={decode.nbest} exceeds decode.beam_size={decode.beam_size}")
