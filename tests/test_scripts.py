"""Every script in scripts/ runs at a tiny size on the test corpus, so that a script the code
has moved away from fails here rather than on the day someone needs its figures."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import REPO

DATA = str(REPO / "tests" / "data")
TINY_TRANSFORMER = [
    "+experiment=transformer",
    f"data.root={DATA}",
    "data.vocab_size=300",
    "data.max_tokens=256",
    "model.d_model=32",
    "model.num_heads=2",
    "model.num_layers=1",
    "model.ff_dim=64",
    "trainer.num_threads=1",
]


def script(*args: str, cwd=REPO) -> str:
    """The script's stdout; a failure shows its stderr."""
    done = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.parametrize("mode", ["ab", "profile"])
def test_the_step_benchmark_times_the_real_trainers_step(mode, cache_dir):
    cache = f"data.cache_dir={cache_dir}"  # one cache of the test corpus for every script
    options = ["--warmup", "1", "--steps", "2", "--rounds", "1"]
    out = script("scripts/bench_step.py", mode, *options, *TINY_TRANSFORMER, cache)
    if mode == "ab":
        rates = [float(line.split()[-3]) for line in out.splitlines() if "ms/update" in line]
        assert len(rates) == 4 and all(rate > 0 for rate in rates)
    else:
        assert "ms/step" in out and "Self CPU time total" in out


def test_the_step_benchmark_puts_mt_beside_torchs_transformer():
    options = ["--tiny", "--batch", "4", "--length", "5", "--vocab", "100", "--steps", "1"]
    out = script("scripts/bench_step.py", "vs-torch", *options, "--repeats", "1")
    assert "mt Transformer" in out and "torch.nn.Transformer" in out


def test_batch_shapes_counts_exact_and_fixed_batches(cache_dir):
    out = script("scripts/batch_shapes.py", *TINY_TRANSFORMER, f"data.cache_dir={cache_dir}")
    exact, fixed = out.splitlines()[-2:]
    assert exact.startswith("exact: ") and fixed.startswith("fixed: ")
    assert "padding efficiency" in fixed


def test_the_significance_benchmark_times_the_tests():
    out = script("scripts/bench_significance.py", "--data-root", DATA, "--runs", "2")
    assert out.startswith("2 runs x 40 sentences: ")


def test_train_throughput_reads_a_runs_curves(memorised_run):
    report = json.loads(script("scripts/train_throughput.py", str(memorised_run[0])))
    assert report["steps"] > 0 and report["target_tokens_per_s"] > 0


def test_the_architecture_benchmark_times_training_and_decoding(tmp_path, cache_dir):
    shape = [f"--set={key}" for key in [*TINY_TRANSFORMER[2:8], f"data.cache_dir={cache_dir}"]]
    options = ["--steps", "1", "--warmup", "1", "--repeats", "1", "--sentences", "4"]
    out = tmp_path / "bench.json"
    script(
        "scripts/benchmark.py", "--models", "transformer", "--data-root", DATA,
        *options, *shape, "--json", str(out),
    )  # fmt: skip
    (row,) = json.loads(out.read_text())["results"]
    assert row["model"] == "transformer" and row["decoded_with"] == "untrained weights"
    assert row["train"]["tgt_tokens_per_sec"] > 0 and row["decode_beam5"]["sentences_per_sec"] > 0
