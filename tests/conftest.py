"""Shared fixtures: tiny real Multi30k corpora, composed Hydra configs, one memorised model."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from mt.common.checkpoint import load_checkpoint
from mt.config.schema import Config
from mt.config.store import from_plain_dict, register_configs, to_config
from mt.data.tokenizer import Tokenizer
from mt.models import build_model
from mt.training.trainer import train

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
# The head of Multi30k task 1 (tests/data/README.md): the tests need nothing beside the repo.
MULTI30K = REPO / "tests" / "data" / "multi30k"

register_configs()

# Models small enough to train in seconds, and the settings every training test starts from.
TINY_MODELS = {
    "transformer": [
        "model.d_model=64",
        "model.num_heads=4",
        "model.num_layers=2",
        "model.ff_dim=128",
        "model.dropout=0.0",
    ],
    "rnn": ["model.emb_dim=64", "model.hidden_dim=128", "model.num_layers=1", "model.dropout=0.0"],
    "bahdanau": [
        "model.emb_dim=64",
        "model.hidden_dim=128",
        "model.attention_dim=64",
        "model.dropout=0.0",
    ],
}
TINY = [
    *TINY_MODELS["transformer"],
    "data.vocab_size=300",
    "data.max_tokens=1024",
    "trainer.log_every=1",
    "trainer.num_threads=1",
    "trainer.patience=null",
    "trainer.max_epochs=null",
    "trainer.warmup_steps=20",
    "trainer.lr=3e-3",
    # Tiny runs memorise; the recipes' regularisation is tuned for the real corpus.
    "trainer.label_smoothing=0.1",
    "decode.beam_size=3",
    # The recipes' choice on valid (averaging, length penalties) is tested on its own.
    "trainer.keep_last=0",
    "trainer.average_last=0",
    "trainer.length_penalties=[]",
]


def multi30k_lines(split: str, lang: str, count: int, start: int = 0) -> list[str]:
    with gzip.open(MULTI30K / f"{split}.{lang}.gz", "rt", encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert start + count <= len(lines), f"the fixture has {len(lines)} lines of {split}.{lang}"
    return lines[start : start + count]


def write_corpus(root: Path, name: str, splits: dict[str, tuple[list[str], list[str]]]) -> Path:
    """Plain-text parallel files {root}/{name}/{split}.{de,en}; returns root."""
    directory = root / name
    directory.mkdir(parents=True, exist_ok=True)
    for split, (de, en) in splits.items():
        (directory / f"{split}.de").write_text("".join(s + "\n" for s in de), encoding="utf-8")
        (directory / f"{split}.en").write_text("".join(s + "\n" for s in en), encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def memorise_root(tmp_path_factory) -> Path:
    """30 real training pairs, used as train, valid and test alike: a memorisation task."""
    pairs = (multi30k_lines("train", "de", 30), multi30k_lines("train", "en", 30))
    return write_corpus(
        tmp_path_factory.mktemp("data"),
        "tiny",
        {"train": pairs, "val": pairs, "test_2016_flickr": pairs},
    )


@pytest.fixture(scope="session")
def small_root(tmp_path_factory) -> Path:
    """300 training pairs and 40 unseen validation/test pairs."""
    train_pairs = (multi30k_lines("train", "de", 300), multi30k_lines("train", "en", 300))
    valid_pairs = (multi30k_lines("val", "de", 40), multi30k_lines("val", "en", 40))
    return write_corpus(
        tmp_path_factory.mktemp("data"),
        "small",
        {"train": train_pairs, "val": valid_pairs, "test_2016_flickr": valid_pairs},
    )


def make_config(
    root: Path, name: str, cache: Path, *overrides: str, experiment: str = "transformer"
) -> Config:
    """Compose the real configs (+experiment=...), shrunk, pointed at a tiny corpus."""
    tiny = [o for o in TINY if not o.startswith("model.")] + TINY_MODELS[experiment]
    paths = [f"data.root={root}", f"data.name={name}", f"data.cache_dir={cache}"]
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("config", [f"+experiment={experiment}", *tiny, *paths, *overrides])
    return to_config(cfg)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def memorised_run(memorise_root, cache_dir, tmp_path_factory) -> tuple[Path, dict]:
    """A tiny Transformer trained until it knows its 30 pairs by heart."""
    run_dir = tmp_path_factory.mktemp("memorised")
    config = make_config(
        memorise_root,
        "tiny",
        cache_dir,
        "trainer.max_steps=150",
        "trainer.valid_every=50",
        "trainer.keep_last=2",
    )
    return run_dir, train(config, run_dir)


@pytest.fixture(scope="session")
def moved_checkpoint(memorised_run, tmp_path_factory):
    """best.pt copied alone into a fresh directory: it must carry everything."""
    run_dir, _ = memorised_run
    directory = tmp_path_factory.mktemp("elsewhere")
    return shutil.copy(run_dir / "checkpoints" / "best.pt", directory / "model.pt")


@pytest.fixture(scope="session")
def trained_model(memorised_run):
    """The memorised model (from best.pt), its tokenizer, and 20 seen + 20 unseen sentences."""
    run_dir, _ = memorised_run
    payload = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    config = from_plain_dict(payload["config"])
    tokenizer = Tokenizer.from_dict(payload["tokenizer"])
    model = build_model(config.model, *tokenizer.sizes())
    model.load_state_dict(payload["model"])
    model.eval()
    sentences = multi30k_lines("train", "de", 20) + multi30k_lines("val", "de", 20)
    src = [torch.tensor(ids) for ids in tokenizer.encode_src(sentences)]
    return model, tokenizer, src
