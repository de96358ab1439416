"""The GPU scripts (scripts/gpu_*.sh) at a tiny size on the CPU: the prepared check, the
studies side by side and the wheels they carry, so that they work on the day a GPU is lent."""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
import sys
import tarfile

import torch
from helpers import REPO, run_script, script

from mt.common.runtime import bf16_is_fast, source_commit


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
    assert '"target_tokens_per_s"' in log  # the run's throughput, from its TensorBoard curves
    bench = json.loads((out / "bench_gpu.json").read_text())
    recipes = ["transformer_base", "transformer_big", "transformer"]
    assert [row["recipe"] for row in bench["results"]] == recipes
    for row in bench["results"]:
        assert row["target_tokens_per_s"] > 0 and row["ms_per_update"] > 0
        assert row["mfu"] is None  # no known peak for a CPU: tokens/s only
        assert 0.5 < row["padding_efficiency"] <= 1
        # A CPU's plan: eager, with fixed shapes only where it trains in bf16.
        assert row["compiled"] is False and row["fixed_shapes"] is bf16_is_fast(torch.device("cpu"))
    assert bench["peak_bf16_flops"] is None and bench["commit"] == source_commit()
    assert json.loads((out / "results.json").read_text())["steps"] == 4
    (decoded,) = json.loads((out / "decode.json").read_text())["results"]
    assert decoded["decoded_with"].endswith("final.pt")
    engines = {engine["engine"]: engine for engine in decoded["engines"]}
    assert engines["ctranslate2 float32"]["decode_beam5"]["sentences_per_sec"] > 0
    # Its figures are the user's: a second check into the same OUT is refused, nothing lost.
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    again = run_script(["bash", "scripts/gpu_check.sh"], **{**settings, "RUN": tmp_path / "run2"})
    assert again.returncode == 2 and "holds an earlier run's files" in again.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # A RUN given that exists may be the user's run: refused before anything, never deleted.
    taken = run_script(["bash", "scripts/gpu_check.sh"], **{**settings, "OUT": tmp_path / "new"})
    assert taken.returncode == 2 and "exists" in taken.stderr
    assert (tmp_path / "run" / "results.json").is_file() and not (tmp_path / "new").exists()


def test_the_gpu_studies_script_runs_the_quality_study_and_brings_its_runs_back_without_weights(
    tmp_path, cache_dir
):
    # studies/quality.yaml end to end at a tiny size: its seeds, the multilingual row, the
    # specialised child, the ensembles, the distilled corpus and the student trained on it.
    out, runs = tmp_path / "out", tmp_path / "runs"
    tiny = "model.d_model=32 model.num_heads=2 model.num_layers=1 model.ff_dim=64"
    done = run_script(
        ["bash", "scripts/gpu_studies.sh"], OUT=out, TINY=1, RUNS=runs,
        STUDIES="studies/quality.yaml:7", DATA_ROOT=REPO / "tests" / "data", MT_CACHE_DIR=cache_dir,
        SET=f"{tiny} data.max_tokens=512 trainer.length_penalties=[] trainer.average_last=0 "
        f"trainer.keep_last=0 decode.beam_size=2 data.cache_dir={cache_dir}",
    )  # fmt: skip
    assert done.returncode == 0, (out / "quality.out").read_text()[-3000:]
    files = {"check.log", "env.json", "quality.out", "quality.md", "runs.tgz"}
    assert {p.name for p in out.iterdir()} == files
    assert "quality: exit 0" in (out / "check.log").read_text()
    with tarfile.open(out / "runs.tgz") as packed:
        names = packed.getnames()
        student = json.load(packed.extractfile("./kd_transformer-seed1/results.json"))
    seeds = [
        f"./{row}-seed{s}/results.json"
        for row in ("transformer", "multilingual_to_en")
        for s in (1, 2, 3)
    ]
    assert (
        set(seeds) <= set(names) and "./multilingual_to_en_specialised-seed1/results.json" in names
    )
    assert student["steps"] == 4 and "ensemble3" in json.dumps(student["config"]["data"])
    assert not [name for name in names if name.endswith(".pt") or "checkpoints" in name]
    report = (out / "quality.md").read_text()
    assert "full recipe, distilled from its 3-seed ensemble" in report
    # The corpus: the teacher row's three seeds as one ensemble, at the study's threads, made
    # after the teacher trained and before the student did.
    record = json.loads((runs / "distilled" / "ensemble3" / "distill.json").read_text())
    assert record["pairs"] == 300 and len(record["teacher"]) == 3 and record["threads"] == 1
    said = (out / "quality.out").read_text()
    assert said.index("transformer-seed3") < said.index("mt.distill") < said.index("kd_transformer")
    # Here, from what came back alone (no weights, no corpus) and the command check.log
    # gives: the same report, nothing distilled or trained again.
    back = tmp_path / "back"
    with tarfile.open(out / "runs.tgz") as packed:
        packed.extractall(back, filter="data")
    logged = next(
        line for line in (out / "check.log").read_text().splitlines() if "-m mt.study" in line
    )
    command = logged.split(": ", 1)[1].split()
    command[0], command[command.index("--runs") + 1] = sys.executable, str(back)
    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "mt.distill" not in again.stdout and "mt.train" not in again.stdout
    assert (back / "quality.md").read_text() == report


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
    # A package not installed here has no version to fetch: named, and nothing fetched.
    missing = run_script(["bash", "scripts/gpu_wheels.sh"], NAMES="no-such-package", WHEELS=wheels)
    assert missing.returncode == 1 and "no-such-package is not installed here" in missing.stderr
    assert len(list(wheels.iterdir())) == 1
