"""The GPU scripts (scripts/gpu_*.sh) at a tiny size on the CPU: the prepared check, the
studies side by side and the wheels they carry, so that they work on the day a GPU is lent."""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import tarfile

from helpers import REPO, TINY_MODELS, run_script, script

from mt.common.runtime import source_commit


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
