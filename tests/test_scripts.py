"""Every script in scripts/ runs at a tiny size on the test corpus, so that a script the code
has moved away from fails here rather than on the day someone needs its figures."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tarfile

import pytest
from helpers import REPO, TINY_MODELS

from mt.common.runtime import source_commit

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


def run_script(command: list[str], **env: str) -> subprocess.CompletedProcess:
    """A shell script run from the repository with these environment settings added."""
    environment = {**os.environ, **{key: str(value) for key, value in env.items()}}
    return subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True)


def test_the_gpu_check_runs_every_step_at_a_tiny_size_and_keeps_its_figures(tmp_path, cache_dir):
    out = tmp_path / "out"
    settings = {
        "OUT": out,
        "TINY": 1,
        "STEPS": 4,
        "RUN": tmp_path / "run",
        "MT_CACHE_DIR": cache_dir,
    }
    done = run_script(["bash", "scripts/gpu_check.sh"], **settings)
    assert done.returncode == 0, (out / "steps.log").read_text()[-3000:]
    files = {"check.log", "steps.log", "env.json", "bench_gpu.json", "results.json", "decode.json"}
    assert {p.name for p in out.iterdir()} == files
    log = (out / "check.log").read_text()
    assert "pytest_gpu: skipped, no CUDA device" in log and "done: exit 0" in log
    bench = json.loads((out / "bench_gpu.json").read_text())
    recipes = ["transformer_base", "transformer_big", "transformer"]
    assert [row["recipe"] for row in bench["results"]] == recipes
    for row in bench["results"]:
        assert row["target_tokens_per_s"] > 0 and row["ms_per_update"] > 0
        assert row["mfu"] is None  # no known peak for a CPU: tokens/s only
        assert 0.5 < row["padding_efficiency"] <= 1
        assert row["compiled"] is False and row["fixed_shapes"] is False
    assert bench["peak_bf16_flops"] is None and bench["commit"] == source_commit()
    assert json.loads((out / "results.json").read_text())["steps"] == 4
    (decoded,) = json.loads((out / "decode.json").read_text())["results"]
    assert decoded["decoded_with"].endswith("final.pt")
    engines = {engine["engine"]: engine for engine in decoded["engines"]}
    assert engines["ctranslate2 float32"]["decode_beam5"]["sentences_per_sec"] > 0
    # Its figures are the user's: a second check into the same OUT is refused, nothing lost.
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    again = run_script(["bash", "scripts/gpu_check.sh"], **settings)
    assert again.returncode == 2 and "holds an earlier run's files" in again.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_the_gpu_studies_script_runs_a_study_and_brings_its_runs_back_without_weights(
    memorise_root, tmp_path, cache_dir
):
    rows = [{"name": "rnn", "overrides": ["+experiment=rnn", *TINY_MODELS["rnn"]]}]
    study = {"title": "Tiny", "seeds": [1], "rows": rows, "long_inputs": [], "examples": 0}
    study["overrides"] = ["data.name=tiny", f"data.cache_dir={cache_dir}"]
    (tmp_path / "tiny.yaml").write_text(json.dumps(study))  # JSON is YAML
    out, runs = tmp_path / "out", tmp_path / "runs"
    done = run_script(
        ["bash", "scripts/gpu_studies.sh"], OUT=out, TINY=1, RUNS=runs,
        DATA_ROOT=memorise_root, STUDIES=f"{tmp_path / 'tiny.yaml'}:2", MT_CACHE_DIR=cache_dir,
    )  # fmt: skip
    assert done.returncode == 0, (out / "tiny.out").read_text()[-3000:]
    assert {p.name for p in out.iterdir()} == {
        "check.log",
        "env.json",
        "tiny.out",
        "tiny.md",
        "runs.tgz",
    }
    assert "tiny: exit 0" in (out / "check.log").read_text()
    with tarfile.open(out / "runs.tgz") as packed:
        names = packed.getnames()
        results = json.load(packed.extractfile("./rnn-seed1/results.json"))
    assert results["steps"] == 4 and "./tiny.md" in names
    assert not [name for name in names if name.endswith(".pt") or "checkpoints" in name]


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


def test_the_wheels_script_fetches_the_installed_versions_for_the_gpu_machines_python(tmp_path):
    # Offline: pip finds mt's own wheel, built here (from a copy: a build leaves files in the
    # tree it builds), in a local folder instead of the index.
    source, links, wheels = tmp_path / "source", tmp_path / "links", tmp_path / "wheels"
    for name in ("mt", "configs"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(REPO / name, source / name)
    build = ["pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index"]
    script("-m", *build, "-w", str(links), str(source))
    done = run_script(
        ["bash", "scripts/gpu_wheels.sh"], NAMES="mt-toolkit", WHEELS=wheels,
        PIP_NO_INDEX=1, PIP_FIND_LINKS=links,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    version = importlib.metadata.version("mt-toolkit")
    assert [p.name for p in wheels.iterdir()] == [f"mt_toolkit-{version}-py3-none-any.whl"]
