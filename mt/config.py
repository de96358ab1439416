"""Typed configuration schemas, registered in Hydra's ConfigStore, and cross-field checks.

YAML files under configs/ hold values only; these dataclasses decide which keys exist and of
what type, so a misspelled key or a wrong type stops the run at start-up naming the key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, is_dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from mt.errors import MTError

REPO_DATA_DIR = Path(__file__).resolve().parent.parent / "data"
LANGUAGES_OF_MULTI30K = ("de", "en", "fr", "cs")


class CorpusFormat(Enum):
    parallel = "parallel"  # {root}/{name}/{split}.{lang}[.gz], one sentence per line
    tsv = "tsv"  # {root}/{name}/{split}.tsv[.gz]: source<TAB>target
    jsonl = "jsonl"  # {root}/{name}/{split}.jsonl[.gz]: {"de": ..., "en": ...}
    hub = "hub"  # datasets.load_dataset(name, hub_config, split=split)


class SubwordType(Enum):
    unigram = "unigram"
    bpe = "bpe"


@dataclass
class TrainSource:
    """One of several training corpora (data.train_sources); a key left null is data's own."""

    name: str = MISSING  # directory under root, or the Hub dataset name
    format: CorpusFormat | None = None
    root: str | None = None
    hub_config: str | None = None
    split: str | None = None  # its training split's name (null: data.train_split)
    weight: float = 1.0  # times per epoch its pairs are seen (0.5: a random half, each epoch)


@dataclass
class DataConfig:
    format: CorpusFormat = CorpusFormat.parallel
    root: str | None = None  # None: the repository's data/ directory
    name: str = "multi30k"  # directory under root, or the Hub dataset name
    hub_config: str | None = None
    streaming: bool = False  # hub: read the dataset as it is iterated, not downloaded first
    src_lang: str = "de"
    tgt_lang: str = "en"
    train_split: str = "train"
    valid_split: str = "val"
    test_split: str = "test_2016_flickr"
    download: bool = True  # fetch Multi30k into {root}/multi30k when its files are missing
    # Several training corpora, read one after the other into one cache, each sampled by its
    # weight; valid and test still come from data.name. Empty: data.name's train_split only.
    train_sources: list[TrainSource] = field(default_factory=list)
    train_limit: int | None = None  # use only the first N pairs of each training corpus
    max_len: int = 128  # training pairs longer than this (in subwords) are dropped
    max_length_ratio: float | None = (
        None  # ... and those whose longer side is this many times longer
    )
    max_tokens: int = 2048  # per batch, counting padding: batch size * longest side
    vocab_size: int = 8000
    dedup: bool = False  # drop repeated training pairs (their first occurrence stays)
    num_proc: int = 1  # processes encoding the corpus (a large one: the machine's cores)
    spm_sample: int | None = None  # train sentencepiece on this many sampled sentences (all: None)
    subword_type: SubwordType = SubwordType.unigram
    joint_vocab: bool = True
    cache_dir: str | None = None  # None: the repository's data/cache
    loader_workers: int | None = None  # processes padding batches ahead; None: 1 on a GPU, else 0


@dataclass
class TransformerConfig:
    d_model: int = 256
    num_heads: int = 8
    num_layers: int = 3  # in the encoder and in the decoder
    ff_dim: int = 1024
    dropout: float = 0.1
    pre_norm: bool = True
    tie_embeddings: bool = True  # only possible with a joint vocabulary
    max_positions: int = 1024


class RNNCell(Enum):
    lstm = "lstm"
    gru = "gru"


class AttentionScore(Enum):
    additive = "additive"
    dot = "dot"
    general = "general"
    scaled_dot = "scaled_dot"
    kernel = "kernel"  # Nadaraya-Watson: -||W s - U h||^2 / 2


@dataclass
class RNNConfig:
    cell: RNNCell = RNNCell.lstm
    emb_dim: int = 256
    hidden_dim: int = 512
    num_layers: int = 2  # in the encoder and in the decoder
    dropout: float = 0.3
    tie_embeddings: bool = True  # source and target embeddings; needs a joint vocabulary
    # Sutskever et al.'s trick: read the source backwards, so its first words are the last the
    # encoder saw, close to the first target words the decoder must produce.
    reverse_source: bool = True


@dataclass
class BahdanauConfig:
    emb_dim: int = 256
    hidden_dim: int = 512  # decoder state; each encoder direction gets half
    attention_dim: int = 256  # additive attention's hidden layer
    score: AttentionScore = AttentionScore.additive
    dropout: float = 0.3
    tie_embeddings: bool = True


@dataclass
class TrainerConfig:
    seed: int = 1
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    num_threads: int | None = None  # CPU threads for torch; None: torch's default
    max_steps: int | None = None
    max_epochs: int | None = 30
    max_minutes: float | None = None  # wall-clock budget for training
    lr: float = 7e-4  # peak learning rate, reached after warmup_steps
    warmup_steps: int = 1000
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    weight_decay: float = 0.0
    label_smoothing: float = 0.1
    clip_norm: float = 1.0
    accumulate: int = 1  # batches per optimizer step
    log_every: int = 100
    valid_every: int = 1000
    valid_beam_size: int = 1  # 1: greedy, the cheap choice during training
    patience: int | None = 10  # validations without a better BLEU before stopping
    keep_last: int = 0  # also keep the N latest validation checkpoints (for mt.average)
    # The reported model, chosen by beam-search BLEU on valid after training: best.pt or the
    # mean of the newest average_last snapshots (0: best.pt only), with the length penalty
    # among length_penalties (empty: decode.length_penalty).
    average_last: int = 0
    length_penalties: list[float] = field(default_factory=list)
    save_every: int | None = None  # also write last.pt every N steps between validations
    ddp_timeout_s: int = 1800  # torchrun: a rank that waits longer for another ends the job
    compile: bool = False  # torch.compile the training forward/backward (opt-in: slow start)
    num_samples: int = 3  # sample translations logged at each validation
    attention_maps: int = 2  # first validation sentences whose attention is drawn
    resume: bool = False  # continue from {run dir}/checkpoints/last.pt
    overwrite: bool = False  # train from scratch into a run directory that holds checkpoints


@dataclass
class DecodeConfig:
    beam_size: int = 5
    length_penalty: float = 1.0  # GNMT alpha; 0 ranks by raw log-probability
    nbest: int = 1
    max_len_a: float = 1.5  # output length limit: a * source length + b
    max_len_b: int = 10
    max_tokens: int = 4096  # source tokens per decoding batch
    cache: bool = True  # false: re-decode the whole prefix at every step (only to compare)


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: Any = MISSING  # one of the model schemas, chosen by the model group
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)


MODEL_SCHEMAS = {"transformer": TransformerConfig, "rnn": RNNConfig, "bahdanau": BahdanauConfig}


def register_configs() -> None:
    """Make the schemas known to Hydra so YAML files can name them in their defaults."""
    store = ConfigStore.instance()
    store.store(name="base_config", node=Config)
    from mt.tool_config import TOOL_SCHEMAS  # they build on DecodeConfig, defined here

    for name, schema in TOOL_SCHEMAS.items():
        store.store(name=f"{name}_schema", node=schema)
    for name, schema in MODEL_SCHEMAS.items():
        store.store(group="model", name=f"{name}_schema", node=schema)


def model_name(model_cfg: Any) -> str:
    """The architecture name of a model schema instance."""
    for name, schema in MODEL_SCHEMAS.items():
        if isinstance(model_cfg, schema):
            return name
    raise MTError(f"unknown model config type {type(model_cfg).__name__}")


def to_object(cfg: DictConfig) -> Any:
    """Hydra's composed config as the typed dataclasses, refusing keys no schema declares."""
    obj = OmegaConf.to_object(cfg)
    refuse_unknown_keys(cfg, obj)
    return obj


def refuse_unknown_keys(cfg: DictConfig, obj: Any, prefix: str = "") -> None:
    """`+model.num_head=4` adds a key beside the schema's own, which to_object would drop
    without a word: name it instead, as a plain typo is named."""
    known = {f.name for f in fields(obj)}
    for key in cfg.keys():
        if key not in known:
            raise MTError(f"{prefix}{key}: not a key of {type(obj).__name__}")
        value = getattr(obj, key)
        if is_dataclass(value) and isinstance(cfg[key], DictConfig):
            refuse_unknown_keys(cfg[key], value, f"{prefix}{key}.")


def to_config(cfg: DictConfig) -> Config:
    """Convert Hydra's composed config into plain dataclasses and check it."""
    config = to_object(cfg)
    check_config(config)
    return config


def to_plain_dict(config: Config) -> dict:
    """Config as plain Python types (for checkpoints and results)."""
    plain = OmegaConf.to_container(OmegaConf.structured(config), enum_to_str=True)
    plain["model_name"] = model_name(config.model)
    return plain


def from_plain_dict(plain: dict) -> Config:
    """Rebuild a typed Config from to_plain_dict's output."""
    plain = dict(plain)
    schema = MODEL_SCHEMAS[plain.pop("model_name")]
    merged = OmegaConf.merge(OmegaConf.structured(Config(model=schema())), plain)
    return OmegaConf.to_object(merged)


def check_config(config: Config) -> None:
    """Cross-field checks that a schema cannot express; raise MTError naming the key."""
    data, trainer, decode = config.data, config.trainer, config.decode
    check_data(data)
    for section in ("trainer", "model"):
        check_ranges(section, getattr(config, section))
    if data.src_lang == data.tgt_lang:
        raise MTError(f"data.src_lang and data.tgt_lang are both '{data.src_lang}'")
    if data.format is CorpusFormat.parallel and data.name == "multi30k":
        for key in ("src_lang", "tgt_lang"):
            if getattr(data, key) not in LANGUAGES_OF_MULTI30K:
                raise MTError(
                    f"data.{key}='{getattr(data, key)}': Multi30k has {LANGUAGES_OF_MULTI30K}"
                )
    check_decode(decode)
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
    model = config.model
    if isinstance(model, TransformerConfig):
        if model.d_model % model.num_heads:
            raise MTError(
                f"model.d_model={model.d_model} is not divisible by "
                f"model.num_heads={model.num_heads}"
            )
    if isinstance(model, BahdanauConfig) and model.hidden_dim % 2:
        raise MTError(f"model.hidden_dim={model.hidden_dim} must be even (two directions)")
    if model.tie_embeddings and not data.joint_vocab:
        raise MTError("model.tie_embeddings=true needs data.joint_vocab=true")


def at_least(low: float) -> tuple[Callable[[float], bool], str]:
    return (lambda value: value >= low), f"must be ≥ {low}"


def above(low: float) -> tuple[Callable[[float], bool], str]:
    return (lambda value: value > low), f"must be > {low}"


FRACTION = (lambda value: 0 <= value < 1), "must be in [0, 1)"

# Every numeric setting's range, in one place (model keys apply to the models that have them;
# None, where a key allows it, means "no limit" and is not checked).
RANGES = {
    **{f"data.{k}": at_least(1) for k in ("train_limit", "max_len", "max_tokens")},
    "data.spm_sample": at_least(101),  # sentencepiece's own minimum
    "data.max_length_ratio": at_least(1),
    "data.num_proc": at_least(1),
    "data.loader_workers": at_least(0),
    "data.vocab_size": at_least(5),  # the 4 special pieces and at least one more
    "source.weight": above(0),
    "trainer.num_threads": at_least(1),
    **{f"trainer.{k}": at_least(1) for k in ("max_steps", "max_epochs", "warmup_steps")},
    **{f"trainer.{k}": above(0) for k in ("max_minutes", "lr", "clip_norm")},
    "trainer.weight_decay": at_least(0),
    "trainer.label_smoothing": FRACTION,
    **{f"trainer.{k}": at_least(1) for k in ("accumulate", "log_every", "valid_every")},
    **{f"trainer.{k}": at_least(1) for k in ("valid_beam_size", "patience", "save_every")},
    "trainer.ddp_timeout_s": at_least(1),
    **{f"trainer.{k}": at_least(0) for k in ("keep_last", "num_samples", "attention_maps")},
    "trainer.average_last": at_least(0),
    **{f"model.{k}": at_least(1) for k in ("d_model", "num_heads", "num_layers", "ff_dim")},
    **{f"model.{k}": at_least(1) for k in ("max_positions", "emb_dim", "hidden_dim")},
    "model.attention_dim": at_least(1),
    "model.dropout": FRACTION,
    **{f"decode.{k}": at_least(1) for k in ("beam_size", "nbest", "max_tokens")},
    **{f"decode.{k}": at_least(0) for k in ("length_penalty", "max_len_a", "max_len_b")},
    **{f"serve.{k}": at_least(1) for k in ("max_sentences", "max_chars", "max_beam_size")},
    "serve.port": ((lambda value: 0 <= value <= 65535), "must be in [0, 65535]"),
}


def check_ranges(section: str, values: Any, shown: str | None = None) -> None:
    """Refuse a value outside RANGES, naming the key: `trainer.warmup_steps=0: must be ≥ 1`
    (keys shown with the prefix shown, by default the section's)."""
    shown = f"{section}." if shown is None else shown
    for key, (allowed, rule) in RANGES.items():
        prefix, _, name = key.partition(".")
        value = getattr(values, name, None) if prefix == section else None
        if value is not None and not allowed(value):
            raise MTError(f"{shown}{name}={value}: {rule}")


def check_data(data: DataConfig) -> None:
    check_ranges("data", data)
    for k, source in enumerate(data.train_sources):
        check_ranges("source", source, shown=f"data.train_sources[{k}].")


def check_decode(decode: DecodeConfig) -> None:
    check_ranges("decode", decode)
    if decode.nbest > decode.beam_size:
        raise MTError(f"decode.nbest={decode.nbest} exceeds decode.beam_size={decode.beam_size}")
