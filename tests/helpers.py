"""What the tests share: the tiny real corpus and settings, composed configs, running the
commands (in a subprocess or in process), and reading what a run wrote."""

from __future__ import annotations

import gzip
import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from mt.common.files import TEMPORARY
from mt.common.special_ids import BOS_ID, EOS_ID
from mt.config.schema import Config
from mt.config.store import register_configs, to_config
from mt.data.batches import make_batch, train_batches
from mt.models.contract import select_rows
from mt.training.trainer import Trainer

register_configs()

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
# The head of Multi30k task 1 (tests/data/README.md): the tests need nothing beside the repo.
MULTI30K = REPO / "tests" / "data" / "multi30k"

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


def make_config(
    root: Path, name: str, cache: Path, *overrides: str, experiment: str = "transformer"
) -> Config:
    """Compose the real configs (+experiment=...), shrunk, pointed at a tiny corpus."""
    tiny = [o for o in TINY if not o.startswith("model.")] + TINY_MODELS[experiment]
    paths = [f"data.root={root}", f"data.name={name}", f"data.cache_dir={cache}"]
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("config", [f"+experiment={experiment}", *tiny, *paths, *overrides])
    return to_config(cfg)


def run_tool(tool: str, *args: str, cwd, stdin: str | None = None) -> subprocess.CompletedProcess:
    """`python -m mt.TOOL ARGS` in a fresh process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", f"mt.{tool}", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


def run_train(*overrides: str, cwd=REPO) -> subprocess.CompletedProcess:
    return run_tool("train", *overrides, cwd=cwd)


@dataclass
class Finished:
    """What a command run in process left: its exit status and what it printed."""

    returncode: int
    stdout: str
    stderr: str


def run_in_process(main, *args: str, capsys, monkeypatch) -> Finished:
    """A command's Hydra main with these arguments, in this process: for start-up refusals,
    where a fresh interpreter would only add its seconds of imports."""
    monkeypatch.setattr(sys, "argv", ["mt", *args])
    capsys.readouterr()
    # Hydra configures logging for its job; later tests must not log into this one's capture.
    handlers, level = logging.root.handlers[:], logging.root.level
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    finally:
        logging.root.handlers[:], logging.root.level = handlers, level
    out, err = capsys.readouterr()
    return Finished(code, out, err)


def assert_clean_failure(result, *needles: str) -> None:
    """A non-zero exit with the needles on stderr and no traceback."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


def write_lines(path, lines: list[str]):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def scalars(run_dir: Path, tag: str) -> dict[int, float]:
    """One TensorBoard curve of a run: step -> value."""
    events = EventAccumulator(str(run_dir / "tb")).Reload()
    return {e.step: e.value for e in events.Scalars(tag)}


def losses(run_dir: Path) -> dict[int, float]:
    return scalars(run_dir, "train/loss")


def leftover_temporaries(directory: Path) -> list[Path]:
    """Every file or directory below directory that still has a temporary's name."""
    return sorted(directory.rglob(f"{TEMPORARY}*"))


A, B = 4, 5  # the scripted vocabulary: PAD UNK BOS EOS A B


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str):
    with urllib.request.urlopen(url, timeout=60) as response:
        return json.loads(response.read())


def http_post(url: str, body) -> tuple[int, dict]:
    """The status and JSON answer of POSTing body (bytes as they are, else as JSON)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@contextmanager
def serving(*args: str) -> Iterator[str]:
    """`python -m mt.serve *args` on a free loopback port, until the block ends: its URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "mt.serve", f"port={port}", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None, process.stdout.read()
        try:
            http_get(url + "/health")
            break
        except OSError:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.3)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


class ScriptedDecoder(nn.Module):
    """Next-token probabilities depend only on the previous token (a Markov chain):

        after BOS: A .6, B .4    after A: A .36, B .34, EOS .3    after B: EOS .9, A .05, B .05

    Greedy follows A forever (A A A ... forced EOS). The true best sequences are
    B EOS (.4 * .9 = .36), then A B EOS (.6 * .34 * .9 = .1836), then A EOS (.18).
    """

    max_length = None

    def __init__(self):
        super().__init__()
        probs = torch.zeros(6, 6)
        probs[BOS_ID, A], probs[BOS_ID, B] = 0.6, 0.4
        probs[A, A], probs[A, B], probs[A, EOS_ID] = 0.36, 0.34, 0.3
        probs[B, EOS_ID], probs[B, A], probs[B, B] = 0.9, 0.05, 0.05
        probs[EOS_ID, EOS_ID] = 1.0  # a finished row, fed on by the search, stays finished
        self.register_buffer("log_probs", probs.log())

    def encode(self, src):
        return {"src": src}

    def forward(self, src, tgt_in):
        """Teacher forcing (mt.score): logits whose log-softmax is the chain's log-probs."""
        return self.log_probs[tgt_in]

    def decode_step(self, prev_tokens, memory, state):
        steps = torch.zeros_like(prev_tokens) if state is None else state["steps"] + 1
        return self.log_probs[prev_tokens], {"steps": steps}

    def reorder_state(self, state, index):
        return select_rows(state, index)


def one_token_source(batch: int = 1) -> torch.Tensor:
    return torch.full((batch, 1), EOS_ID)  # length limit = 0 * 1 + 4 = 4 tokens


def update_losses(
    root: Path, cache: Path, run_dir: Path, steps: int, *overrides: str, fixed=None, adjust=None
):
    """Per-token loss of `steps` updates of the tiny model (dropout off) on the first
    fixed-shape batches of epoch 0, cycled: padded to their fixed shapes when fixed (None: as
    the trainer would), to their longest sentences otherwise. `adjust(trainer)` runs first."""
    config = make_config(root, "tiny", cache, "model.dropout=0", *overrides)
    torch.manual_seed(0)
    trainer = Trainer(config, run_dir)
    if adjust is not None:
        adjust(trainer)
    split, data = trainer.corpus.train, config.data
    seed = config.trainer.seed
    batches = train_batches(split, data.max_tokens, data.max_len, seed, 0, fixed_shapes=True)
    fixed = trainer.progress.fixed_shapes if fixed is None else fixed
    losses = []
    for step in range(steps):
        batch = batches[step % len(batches)]
        loss, tokens, _ = trainer.train_step([make_batch(split, batch if fixed else batch.indices)])
        losses.append(float(loss) / tokens)
    return losses


def script(*args: str, cwd=REPO) -> str:
    """The script's stdout; a failure shows its stderr."""
    done = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def run_script(command: list[str], **env: str) -> subprocess.CompletedProcess:
    """A shell script run from the repository with these environment settings added."""
    environment = {**os.environ, **{key: str(value) for key, value in env.items()}}
    return subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True)
