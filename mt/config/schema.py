"""Typed configuration schemas of training: data, trainer, decode, and the Config they make.

YAML files under configs/ hold only what differs from these defaults; the dataclasses decide
which keys exist and of what type, so a misspelled key or a wrong type stops the run at
start-up naming the key. Each schema lists its numeric ranges (RANGES); each model's schema
lives beside its network in mt/models/.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from typing import Any, ClassVar

from omegaconf import MISSING

from mt.common.ranges import (
    BEAM,
    COUNT,
    EPOCH_WEIGHT,
    FRACTION,
    POSITIONS,
    PROCESSES,
    SEED,
    STEPS,
    TOKENS,
    VOCABULARY,
    Rule,
    above,
    at_least,
    within,
)

LANGUAGES_OF_MULTI30K = ("de", "en", "fr", "cs")
MULTI30K_URL = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw/{file}"


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

    RANGES: ClassVar[dict[str, Rule]] = {"weight": EPOCH_WEIGHT}


@dataclass
class DataConfig:
    format: CorpusFormat = CorpusFormat.parallel
    root: str | None = None  # None: $MT_DATA_DIR, else ./data (mt/data/readers.py)
    name: str = "multi30k"  # directory under root, or the Hub dataset name
    hub_config: str | None = None
    streaming: bool = False  # hub: read the dataset as it is iterated, not downloaded first
    src_lang: str = "de"
    tgt_lang: str = "en"
    train_split: str = "train"
    valid_split: str = "val"
    test_split: str = "test_2016_flickr"
    download: bool = True  # fetch Multi30k into {root}/multi30k when its files are missing
    # Where from: {file} is a raw file's name (train.de.gz); a mirror, or a local server.
    download_url: str = MULTI30K_URL
    # Several training corpora, read one after the other into one cache, each sampled by its
    # weight; valid and test still come from data.name. Empty: data.name's train_split only.
    train_sources: list[TrainSource] = field(default_factory=list)
    # Several directions of one multi-parallel corpus in one model ("de-en", "fr-en", ...):
    # each source sentence starts with its target language's tag (<2en>); empty: src_lang to
    # tgt_lang alone. Each direction is sampled by its direction_weights entry (empty: by
    # size^(1/temperature), of the total size: temperature 1 keeps the corpus's proportions).
    directions: list[str] = field(default_factory=list)
    direction_weights: list[float] = field(default_factory=list)
    temperature: float = 1.0
    train_limit: int | None = None  # use only the first N pairs of each training corpus
    max_len: int = 128  # training pairs longer than this (in subwords) are dropped
    max_length_ratio: float | None = (
        None  # ... and those whose longer side is this many times longer
    )
    max_tokens: int = 2048  # per batch, counting padding: batch size * longest side
    # Concatenation augmentation (mt/data/concat.py): each epoch, a pair starts with this
    # probability an example of up to concat_max neighbouring pairs of its corpus, joined.
    concat_prob: float = 0.0
    concat_max: int = 2
    vocab_size: int = 8000
    dedup: bool = False  # drop repeated training pairs (their first occurrence stays)
    num_proc: int = 1  # processes encoding the corpus (a large one: the machine's cores)
    spm_sample: int | None = None  # train sentencepiece on this many sampled sentences (all: None)
    subword_type: SubwordType = SubwordType.unigram
    joint_vocab: bool = True
    cache_dir: str | None = None  # None: $MT_CACHE_DIR, else ~/.cache/mt (mt/data/cache.py)
    loader_workers: int | None = None  # processes padding batches ahead; None: 1 on a GPU, else 0
    # Training batches of a few fixed shapes (mt.data.batches.fixed_shape_batches), so a
    # compiled step compiles a handful of graphs and a CPU's bf16 step builds a handful of
    # oneDNN kernels; None: when the step is compiled or runs in bf16 on a CPU.
    fixed_shapes: bool | None = None

    RANGES: ClassVar[dict[str, Rule]] = {
        "train_limit": at_least(1),  # a limit on what is read: no size of its own
        "max_len": POSITIONS,
        "max_tokens": TOKENS,
        "concat_prob": within(0, 1),
        "concat_max": within(2, 64),
        "num_proc": PROCESSES,
        "spm_sample": at_least(101),  # sentencepiece's own minimum; a limit, as train_limit
        "max_length_ratio": at_least(1),
        "loader_workers": within(0, 1024),
        "vocab_size": VOCABULARY,
        "temperature": ((lambda value: 0 < value <= 100), "must be in (0, 100]"),
    }


class Precision(Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"


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
    # torch.compile the training forward/backward; None: on CUDA (on a CPU the eager step was
    # faster, docs/performance.md). Minutes of compiling at the start.
    compile: bool | None = None
    # Training arithmetic: auto = bf16 autocast where bf16 matmuls are faster (CUDA; CPUs with
    # AVX512-BF16 or AMX), else fp32. Weights, optimizer and loss stay fp32 either way.
    precision: Precision = Precision.auto
    # CPU: freed memory stays in the C heap for the next step's tensors instead of going back
    # to the kernel (mt/common/heap.py; glibc only): faster steps, resident memory at its peak.
    keep_freed_memory: bool = True
    num_samples: int = 3  # sample translations logged at each validation
    attention_maps: int = 2  # first validation sentences whose attention is drawn
    resume: bool = False  # continue from {run dir}/checkpoints/last.pt
    # Start a new run from a trained model: a checkpoint, or a run directory (its final.pt,
    # else best.pt, else last.pt), with its shape and subword models. Step count, best score
    # and early stopping start afresh; init_keep may also keep "optimizer" (Adam's moments)
    # and "schedule" (the learning rate's place in its warm-up and decay).
    init_from: str | None = None
    init_keep: list[str] = field(default_factory=list)
    freeze: list[str] = field(default_factory=list)  # embeddings, encoder, decoder: not trained
    overwrite: bool = False  # train from scratch into a run directory that holds checkpoints

    RANGES: ClassVar[dict[str, Rule]] = {
        "seed": SEED,
        "num_threads": PROCESSES,
        **dict.fromkeys(("max_steps", "max_epochs", "warmup_steps", "patience"), STEPS),
        **dict.fromkeys(("log_every", "valid_every", "save_every"), STEPS),
        "accumulate": within(1, 10**4),  # batches held for one update
        "max_minutes": within(1e-9, 10**8),  # a century, above 0
        **{k: above(0) for k in ("lr", "clip_norm")},
        "weight_decay": at_least(0),
        "label_smoothing": FRACTION,
        "valid_beam_size": BEAM,
        "ddp_timeout_s": within(1, 7 * 86400),
        **dict.fromkeys(("keep_last", "num_samples", "attention_maps", "average_last"), COUNT),
    }


class Engine(Enum):
    torch = "torch"  # our model and search, from checkpoint=PATH
    ctranslate2 = "ctranslate2"  # a model exported by mt.export, from model_dir=DIR


@dataclass
class DecodeConfig:
    beam_size: int = 5
    length_penalty: float = 1.0  # GNMT alpha; 0 ranks by raw log-probability
    nbest: int = 1
    max_len_a: float = 1.5  # output length limit: a * source length + b
    max_len_b: int = 10
    max_tokens: int = 4096  # source tokens per decoding batch
    incremental: bool = True  # false: re-decode the whole prefix at every step (to compare)
    # Sampling instead of search (back-translation): nbest samples per sentence, each token
    # drawn from the top_k most likely (None: all) within the top_p nucleus, at temperature.
    sampling: bool = False
    top_k: int | None = None
    top_p: float = 1.0
    temperature: float = 1.0
    seed: int = 1  # the same seed and input give the same samples

    RANGES: ClassVar[dict[str, Rule]] = {
        **dict.fromkeys(("beam_size", "nbest"), BEAM),
        "max_tokens": TOKENS,
        "top_k": within(1, 1_000_000),  # a vocabulary's size at most
        # Output length a * source length + b: past the positions any model here holds.
        "max_len_a": within(0, 100),
        "max_len_b": within(0, 65536),
        # GNMT's alpha is 0.6 to 2 in practice; past 10, ((5 + |Y|) / 6) ** alpha overflows.
        "length_penalty": ((lambda value: 0 <= value <= 10), "must be in [0, 10]"),
        "top_p": ((lambda value: 0 < value <= 1), "must be in (0, 1]"),
        # Past these, log-probabilities / temperature leave float32's range (nan, inf).
        "temperature": within(0.01, 100),
        "seed": SEED,
    }


@dataclass
class DecodeOverrides:
    """decode.* given on a tool's command line: each key left null is the checkpoint's own
    (the settings it was trained and chosen with), so every tool decodes alike by default."""

    beam_size: int | None = None
    length_penalty: float | None = None
    nbest: int | None = None
    max_len_a: float | None = None
    max_len_b: int | None = None
    max_tokens: int | None = None
    incremental: bool | None = None
    sampling: bool | None = None
    top_k: int | None = None
    top_p: float | None = None
    temperature: float | None = None
    seed: int | None = None

    RANGES: ClassVar[dict[str, Rule]] = DecodeConfig.RANGES

    def given(self) -> dict:
        """The keys given (not null), by name."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def applied_to(self, decode: DecodeConfig) -> DecodeConfig:
        """decode with every key given here replaced."""
        return replace(decode, **self.given())


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: Any = MISSING  # one of the model schemas, chosen by the model group
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
