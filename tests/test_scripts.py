"""Every script in scripts/ runs at a tiny size on the test corpus, so that a script the code
has moved away from fails here rather than on the day someone needs its figures."""

from __future__ import annotations

import json

import pytest
from helpers import REPO, script

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


def test_every_script_is_run_by_a_test():
    """Named by a test, or run (or sourced) by a shell script a test runs."""
    tests = "".join(path.read_text() for path in (REPO / "tests").glob("test_*.py"))
    scripts = sorted((REPO / "scripts").iterdir())
    ran, reached = set(), {path.name for path in scripts if path.name in tests}
    while reached - ran:  # and what the shell scripts reached so far run, until nothing new
        ran |= reached
        shells = "".join(p.read_text() for p in scripts if p.suffix == ".sh" and p.name in ran)
        reached = {path.name for path in scripts if f"scripts/{path.name}" in shells}
    assert not {path.name for path in scripts} - ran


@pytest.mark.parametrize("mode", ["ab", "profile"])
def test_the_step_benchmark_times_the_real_trainers_step(mode, cache_dir):
    cache = f"data.cache_dir={cache_dir}"  # one cache of the test corpus for every script
    options = ["--warmup", "1", "--steps", "2", "--rounds", "1"]
    out = script("scripts/bench_step.py", mode, *options, *TINY_TRANSFORMER, cache)
    if mode == "ab":
        rates = [float(line.split()[-6]) for line in out.splitlines() if "ms/update" in line]
        assert len(rates) == 8 and all(rate > 0 for rate in rates)
    else:
        assert "ms/step" in out and "Self CPU time total" in out and "Input Shapes" in out


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


def test_the_exit_benchmark_times_both_kinds_of_exit():
    report = json.loads(script("scripts/bench_exit.py", "--runs", "1"))
    assert set(report["exit_seconds_median"]) == {"plain", "frozen"}
    assert all(seconds > 0 for seconds in report["exit_seconds_median"].values())


def test_train_throughput_reads_a_runs_curves(memorised_run):
    report = json.loads(script("scripts/train_throughput.py", str(memorised_run[0])))
    assert report["steps"] > 0 and report["target_tokens_per_s"] > 0


def test_the_scale_benchmark_builds_a_corpus_and_measures_prepare_train_and_ddp(tmp_path):
    out = tmp_path / "scale.json"
    options = ["--sizes", "300", "--steps", "2", "--spm-sample", "1000", "--work", str(tmp_path)]
    settings = ["data.vocab_size=300", "trainer.length_penalties=[]", "decode.max_len_a=0.5"]
    script(
        "scripts/bench_scale.py",
        "--data-root",
        DATA,
        *options,
        "--out",
        str(out),
        "--set",
        *settings,
    )
    (row,) = json.loads(out.read_text())["rows"]
    corpus = tmp_path / "synthetic-300" / "train.de"
    assert row["pairs"] == 300 and len(corpus.read_text().splitlines()) == 300
    assert row["prepare_peak_anon_mb"] > 0 and row["train_peak_anon_mb"] > 0
    assert row["warm_start_seconds"] > 0 and row["ddp_warm_start_seconds"] > 0
    for ranks in (1, 2):  # both trainings ran their steps: one process, then two ranks
        results = json.loads(
            (tmp_path / "runs" / f"synthetic-300-{ranks}" / "results.json").read_text()
        )
        assert results["steps"] == 2 and results["world_size"] == ranks


def test_the_load_script_serves_both_engines_with_and_without_batching(memorised_run, tmp_path):
    checkpoint = memorised_run[0] / "checkpoints" / "final.pt"
    out = tmp_path / "load.json"
    options = ["--clients", "1", "2", "--requests", "2", "--threads", "1", "--json", str(out)]
    printed = script(
        "scripts/load.py", "--checkpoint", str(checkpoint), "--data-root", DATA, *options
    )
    results = json.loads(out.read_text())["results"]
    assert list(results) == ["torch", "ctranslate2 int8"]
    for rows in results.values():
        assert [row["batching"] for row in rows] == [False, True]
        for row in rows:
            assert sorted(row["clients"]) == ["1", "2"]  # JSON's keys
            assert all(
                m["requests_per_s"] > 0 and m["p99_s"] >= m["p50_s"]
                for m in row["clients"].values()
            )
            assert row["large_s"] > 0 and row["small_behind_large_s"] > 0
    assert printed.count("| ctranslate2 int8 |") == 2
