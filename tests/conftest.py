"""Shared fixtures: tiny real Multi30k corpora and one memorised model (helpers: helpers.py)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import offline  # noqa: F401  (first of all: no test reaches past this machine)

# pytest -n 2 runs two test processes on the 2 cores: each, and every command it starts, has
# one CPU thread. More threads each would oversubscribe the cores, and torch's threads then
# spin waiting on one another (a tiny validation took 38 s instead of 2).
os.environ["OMP_NUM_THREADS"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402
from helpers import make_config, multi30k_lines, run_tool, write_corpus, write_lines

from mt.common.checkpoint import load_checkpoint
from mt.config.store import from_plain_dict
from mt.data.tokenizer import Tokenizer
from mt.models import build_model
from mt.training.trainer import train

torch.set_num_threads(1)

# The files that take longest, longest first: pytest-xdist hands out whole files in the order
# they are collected, and the heaviest ones, last in the alphabet, left one process working
# alone at the end. Ordered by --durations on the 2-core machine; unlisted files follow.
LONGEST_FIRST = [
    "test_study.py",
    "test_tools.py",
    "test_gpu_scripts.py",
    "test_export.py",
    "test_multilingual.py",
    "test_train.py",
    "test_server.py",
    "test_cli.py",
    "test_faults.py",
    "test_scripts.py",
    "test_distributed.py",
    "test_beam_history.py",
]


def pytest_collection_modifyitems(items):
    """Collected tests reordered so that the longest files start first (a stable sort)."""
    rank = {name: k for k, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(scope="session", autouse=True)
def private_default_cache(tmp_path_factory):
    """A run that names no data.cache_dir builds into a temporary directory (the commands
    under test inherit it), not into the user's ~/.cache/mt."""
    os.environ["MT_CACHE_DIR"] = str(tmp_path_factory.mktemp("default-cache"))


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
def bahdanau_checkpoint(memorise_root, cache_dir, tmp_path_factory) -> Path:
    """A briefly trained Bahdanau model: enough for alignments, not for good translations."""
    run_dir = tmp_path_factory.mktemp("runs") / "bahdanau"
    overrides = ["trainer.max_steps=40", "trainer.valid_every=40", "decode.beam_size=1"]
    config = make_config(memorise_root, "tiny", cache_dir, *overrides, experiment="bahdanau")
    train(config, run_dir)
    return run_dir / "checkpoints" / "best.pt"


@pytest.fixture(scope="session")
def chosen_run(small_root, cache_dir, tmp_path_factory) -> tuple[Path, dict]:
    """A run that chose its model on valid among best.pt and an average, with a length
    penalty, and decodes with settings of its own (beam 2, short outputs): its final.pt is
    what every tool must decode as the run reported."""
    run_dir = tmp_path_factory.mktemp("runs") / "chosen"
    config = make_config(
        small_root,
        "small",
        cache_dir,
        "trainer.max_steps=60",
        "trainer.valid_every=30",
        "trainer.keep_last=2",
        "trainer.average_last=2",
        "trainer.length_penalties=[0.0,2.0]",
        "decode.beam_size=2",
        "decode.max_len_a=1.0",
        "decode.max_len_b=5",
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


@pytest.fixture(scope="session")
def exported(moved_checkpoint, tmp_path_factory) -> Path:
    """The memorised Transformer exported to CTranslate2 by mt.export (float32)."""
    out = tmp_path_factory.mktemp("export") / "ct2"
    result = run_tool("export", f"checkpoint={moved_checkpoint}", f"out={out}", cwd=out.parent)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="session")
def multilingual_root(tmp_path_factory):
    """The same 16 Multi30k descriptions in de, en and fr, as train, valid and test alike."""
    directory = tmp_path_factory.mktemp("data") / "multi"
    directory.mkdir()
    for split in ("train", "val", "test_2016_flickr"):
        for lang in ("de", "en", "fr"):
            write_lines(directory / f"{split}.{lang}", multi30k_lines("train", lang, 16))
    return directory.parent
