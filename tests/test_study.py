"""mt.study: a study file's rows x seeds trained by one command (finished runs kept, other
settings refused), and its report: seeds as mean ± sd, significance on the seeds' outputs,
scores by length, long inputs and word frequency, the figures, the leak audit."""

from __future__ import annotations

import json
import re
import shutil
import socket
import statistics
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import REPO, TINY_MODELS
from omegaconf import OmegaConf
from pytest import approx

from mt import compare
from mt import study as study_command
from mt.common.errors import MTError
from mt.common.files import sha256_file
from mt.evaluation.comparison import clock
from mt.studies.conduct import Options, conduct
from mt.studies.grid import LOCAL_KEYS, check_same_settings, composed, study_runs
from mt.studies.launch import train_all, train_command, waits_for
from mt.studies.spec import load_study, row_overrides
from mt.training.rundir import LOCK
from mt.training.state import flat

TRAINING = [
    "data.name=tiny",
    "data.vocab_size=300",
    "trainer.max_steps=6",
    "trainer.valid_every=3",
    "trainer.warmup_steps=2",
    "trainer.log_every=3",
    "trainer.keep_last=0",
    "trainer.average_last=0",
    "trainer.length_penalties=[]",
    "decode.beam_size=2",
]


def study_file(path: Path, cache: Path, **changes) -> Path:
    rows = [
        {"name": "rnn", "label": "RNN", "overrides": ["+experiment=rnn", *TINY_MODELS["rnn"]]},
        {
            "name": "transformer",
            "overrides": ["+experiment=transformer", *TINY_MODELS["transformer"]],
        },
    ]
    study = {
        "title": "Tiny architectures",
        "seeds": [1, 2],
        "overrides": [*TRAINING, f"data.cache_dir={cache}"],
        "rows": rows,
        "ensemble": True,
        "long_inputs": [1, 2],
        "examples": 2,
        **changes,
    }
    path.write_text(json.dumps(study))  # JSON is YAML
    return path


def block(page: str) -> str:
    """What a page holds between the tiny study's markers."""
    return page.split("<!-- study: tiny -->")[1].split("<!-- end of study: tiny -->")[0]


def run_study(study: Path, root: Path, runs: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "mt.study", str(study), "--runs", str(runs)]
    command += ["--data-root", str(root), "--threads", "1", *extra]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)


def study_here(capsys, study: Path, root: Path, runs: Path, *extra: str) -> tuple[int, str, str]:
    """mt.study in this process, for what trains nothing (a report, a refusal): its exit
    status, stdout and stderr."""
    capsys.readouterr()
    try:
        study_command.main([str(study), "--runs", str(runs), "--data-root", str(root), *extra])
        status = 0
    except SystemExit as end:
        status = end.code
    out, err = capsys.readouterr()
    return status, out, err


def test_a_study_trains_its_grid_once_and_reports_seeds_significance_and_breakdowns(
    memorise_root, tmp_path, capsys
):
    study = study_file(tmp_path / "tiny.yaml", tmp_path / "cache", search_errors=[1, 2])
    runs, docs = tmp_path / "runs", tmp_path / "docs"
    docs.mkdir()
    page = docs / "results.md"
    page.write_text("# Results\n\n<!-- study: tiny -->\nold\n<!-- end of study: tiny -->\nEnd.\n")
    figures = docs / "figures"
    readme = tmp_path / "README.md"
    readme.write_text("<!-- study table: tiny -->\n<!-- end of study table: tiny -->\n")
    first = run_study(
        study,
        memorise_root,
        runs,
        "--write",
        str(page),
        "--figures",
        str(figures),
        "--table",
        str(readme),
    )
    assert first.returncode == 0, first.stderr[-3000:]
    names = [f"{row}-seed{seed}" for seed in (1, 2) for row in ("rnn", "transformer")]
    results = {n: json.loads((runs / n / "results.json").read_text()) for n in names}
    assert results["rnn-seed1"]["model"] == "rnn"
    assert results["rnn-seed2"]["config"]["trainer"]["seed"] == 2

    report = page.read_text()
    assert "old" not in report and report.endswith("<!-- end of study: tiny -->\nEnd.\n")
    # Each row: its seeds' mean ± sample sd, and each seed's score.
    for row, label in (("rnn", "RNN"), ("transformer", "transformer")):
        bleu = [results[f"{row}-seed{s}"]["test"]["bleu"] for s in (1, 2)]
        line = next(x for x in report.splitlines() if x.startswith(f"| {label} | 2 |"))
        assert f"{statistics.mean(bleu):.2f} ± {statistics.stdev(bleu):.2f}" in line
        assert ", ".join(f"{b:.2f}" for b in bleu) in line
        seconds = [results[f"{row}-seed{s}"]["train_seconds"] for s in (1, 2)]
        assert f"| {clock(seconds[0])}, {clock(seconds[1])} |" in line  # each seed's time
        ensemble = json.loads((runs / f"{row}-ensemble-seeds1-2.json").read_text())
        finals = [runs / f"{row}-seed{s}" / results[f"{row}-seed{s}"]["final"] for s in (1, 2)]
        assert ensemble["members"] == [str(path) for path in finals]
        assert f"{ensemble['bleu']:.2f} / {ensemble['chrf']:.2f}" in line
    # mt.compare on the study's runs folder: every run, then the ensembles' test scores.
    compare.main([str(runs)])
    table = capsys.readouterr().out
    assert all(f"| {runs / name} | " in table for name in names)
    ensemble_line = f"| {runs / 'transformer-ensemble-seeds1-2'} | ensemble of 2 |  |  | "
    assert ensemble_line + f"{ensemble['bleu']:.2f} |" in table
    # The README's summary: mean ± sd, the interval of the seeds' outputs, p against the RNN.
    summary = readme.read_text().splitlines()
    assert summary[1].startswith(
        "| row | seeds | params | test BLEU | seeds together BLEU | p BLEU |"
    )
    assert summary[3].startswith("| RNN | 2 |") and summary[3].count("baseline") == 2
    assert summary[4].startswith("| transformer | 2 |") and summary[4].count(" / ") == 2
    # Significance against the baseline (the first row), each sentence's seeds one cluster.
    assert "| RNN (baseline) |" in report and "30 test sentences × 2 seeds" in report
    # Long inputs: the joined test set, per k, in each run's directory.
    joined = json.loads((runs / "transformer-seed1" / "long_inputs.json").read_text())
    assert [(e["k"], e["inputs"]) for e in joined["scores"]] == [(1, 30), (2, 15)]
    assert [len(e["hyps"]) for e in joined["scores"]] == [30, 15]  # for the intervals
    section = report.split("#### Long inputs")[1].split("####")[0]
    interval = r"\d+\.\d\d \(\d+\.\d\d–\d+\.\d\d\)"
    assert re.search(
        rf"\| 2 \| 15 \| \d+ \| transformer \| one input \| {interval} \| {interval} \|", section
    )
    # The memorised test set is the training set: the audit says so.
    assert "- test: 30 of 30 pairs also in training" in report
    # Search errors: per beam, every test sentence the reference, a search or a model error.
    searched = json.loads((runs / "transformer-seed1" / "search_errors.json").read_text())
    assert [entry["beam"] for entry in searched["beams"]] == [1, 2]
    for entry in searched["beams"]:
        assert entry["exact"] + entry["search_errors"] + entry["model_errors"] == approx(1.0)
        assert len(entry["sentences"]) == 30
    seeds = [
        json.loads((runs / f"transformer-seed{s}" / "search_errors.json").read_text())
        for s in (1, 2)
    ]
    section = report.split("#### Search errors")[1].split("####")[0]
    line = next(x for x in section.splitlines() if x.startswith("| transformer | 2 |"))
    for kind in ("exact", "search_errors", "model_errors"):
        shares = [100 * seed["beams"][1][kind] for seed in seeds]
        assert f"{statistics.mean(shares):.2f} ± {statistics.stdev(shares):.2f}" in line
    for name in ("by_length", "long_inputs", "word_f", "search_errors"):
        assert (figures / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"(figures/{name}.png)" in report

    # Rerun: every run kept, nothing decoded again, the same report; and every run's results
    # and test output kept apart (no checkpoints): the same report from them alone, nothing
    # trained or decoded.
    kept = {p: p.read_bytes() for p in runs.rglob("*.json")}
    outputs = tmp_path / "outputs"
    again = run_study(
        study, memorise_root, runs, "--write", str(page), "--figures", str(figures),
        "--outputs", str(outputs),
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count(": finished, kept") == 4
    assert {p: p.read_bytes() for p in runs.rglob("*.json")} == kept
    assert page.read_text() == report
    assert not list(outputs.rglob("*.pt"))
    page.write_text("<!-- study: tiny -->\n<!-- end of study: tiny -->\n")
    status, out, err = study_here(
        capsys, study, memorise_root, outputs, "--write", str(page), "--figures", str(figures)
    )
    assert status == 0, err[-3000:]
    assert out.count(": finished, kept") == 4 and "mt.train" not in out
    assert block(page.read_text()) == block(report)

    # Seed 2 alone (--only-seeds): a run retrained from nothing gives the same numbers; an
    # unfinished one resumes; two trained at once (--jobs 2) each as alone, its output in
    # <runs>/<run>.log; each run's own evaluations made again and its outputs kept; no report.
    shutil.rmtree(runs / "rnn-seed2")
    (runs / "transformer-seed2" / "results.json").unlink()
    seed2, reported = tmp_path / "seed2", (runs / "tiny.md").read_text()
    retrained = run_study(
        study, memorise_root, runs, "--jobs", "2", "--only-seeds", "2", "--outputs", str(seed2)
    )
    assert retrained.returncode == 0, retrained.stderr[-3000:]
    assert "trainer.resume=true" in retrained.stdout and "seed1" not in retrained.stdout
    assert "step      6" in (runs / "rnn-seed2.log").read_text()
    for name in ("rnn-seed2", "transformer-seed2"):
        after = json.loads((runs / name / "results.json").read_text())
        for key in ("valid", "test", "selection", "steps"):
            assert after[key] == results[name][key]
    stale = "transformer-seed2/long_inputs.json"
    assert f"{runs / stale}: made from other runs than these" in retrained.stdout
    assert sorted(p.name for p in seed2.iterdir()) == ["rnn-seed2", "transformer-seed2"]
    assert (seed2 / stale).is_file() and (runs / "tiny.md").read_text() == reported
    # The whole study again: what was computed from the earlier runs (ensembles) made again.
    status, out, err = study_here(capsys, study, memorise_root, runs)
    assert status == 0, err[-3000:]
    assert f"{runs / 'rnn-ensemble-seeds1-2.json'}: made from other runs than these" in out
    for row in ("rnn", "transformer"):
        made = json.loads((runs / f"{row}-ensemble-seeds1-2.json").read_text())["made_from"]
        assert made[1] == {
            "run": f"{row}-seed2",
            "results_sha256": sha256_file(runs / f"{row}-seed2" / "results.json"),
        }

    # The same run directories asked for with other settings (--set adds to every run's
    # overrides): refused, naming the key.
    status, _, err = study_here(capsys, study, memorise_root, runs, "--set", "trainer.max_steps=7")
    assert status == 1
    assert err.strip().splitlines() == [
        f"error: {runs / 'rnn-seed1'}: trained with trainer.max_steps=6, the study asks 7; "
        "give the row another name or the study another --runs"
    ]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sedes": [1]}, "sedes"),
        ({"rows": [{"name": "a"}, {"name": "a"}]}, "rows: 'a' twice"),
        ({"baseline": "cnn"}, "baseline: 'cnn' is none of the rows"),
        ({"seeds": [1, 1]}, "seeds: [1, 1]"),
        ({"long_inputs": [0]}, "long_inputs: 0 is outside"),
        ({"search_errors": [1, 101]}, "search_errors: 101 is outside 1..100"),
        ({"rows": [{"name": "a", "overrides": [], "lr": 1}]}, "lr"),
        ({"rows": [{"name": "a"}, {"name": "p", "pivot": ["a"]}]}, "p: pivot: ['a']; name two"),
        (
            {"rows": [{"name": "a"}, {"name": "p", "pivot": ["a", "a"]}]},
            "no ensembles, long inputs",
        ),
        (
            {"rows": [{"name": "a", "directions": ["de-de"]}]},
            "rows: a: directions: ",
        ),
    ],
)
def test_a_bad_study_file_is_refused_naming_the_key(tmp_path, changes, message):
    study = study_file(tmp_path / "bad.yaml", tmp_path / "cache", **changes)
    with pytest.raises(MTError) as error:
        load_study(study)
    assert str(error.value).startswith(f"{study}: ") and message in str(error.value)
    assert "\n" not in str(error.value)


def test_a_missing_study_file_is_named(tmp_path):
    with pytest.raises(MTError, match="no such study file"):
        load_study(tmp_path / "none.yaml")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"only_seeds": [4]}, "--only-seeds 4: the study's seeds are [1, 2]"),
        ({"only_seeds": [2], "figures": Path("f")}, "--only-seeds 2: a report covers every seed"),
    ],
)
def test_only_seeds_refuses_other_seeds_and_a_report_before_any_training(
    tmp_path, options, message
):
    study = study_file(tmp_path / "tiny.yaml", tmp_path / "cache")
    with pytest.raises(MTError, match=re.escape(message)):
        conduct(Options(study, runs=tmp_path / "runs", **options))
    assert not (tmp_path / "runs").exists()


def test_a_page_without_the_studys_markers_is_refused_before_any_training(memorise_root, tmp_path):
    study = study_file(tmp_path / "tiny.yaml", tmp_path / "cache")
    page = tmp_path / "results.md"
    page.write_text("# Results\n<!-- study: other -->\n<!-- end of study: other -->\n")
    refused = run_study(study, memorise_root, tmp_path / "runs", "--write", str(page))
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"error: {page}: no '<!-- study: tiny -->' ... '<!-- end of study: tiny -->' block to "
        "replace"
    )
    assert not (tmp_path / "runs").exists()


def test_runs_and_distilled_stand_for_their_directories_in_a_rows_overrides(tmp_path):
    rows = [
        {"name": "parent", "overrides": ["+experiment=transformer"]},
        {
            "name": "child",
            "overrides": ["trainer.init_from={runs}/parent-seed1", "data.name={distilled}/kd"],
        },
    ]
    distilled = [{"name": "kd", "teacher": "parent"}]
    study = study_file(tmp_path / "s.yaml", tmp_path / "cache", rows=rows, distilled=distilled)
    loaded = load_study(study)
    runs = tmp_path / "runs"
    child = row_overrides(loaded, loaded.rows[1], 2, runs)
    assert child[-3:-1] == [
        f"trainer.init_from={runs.resolve()}/parent-seed1",
        f"data.name={runs.resolve()}/distilled/kd",
    ]
    assert child[-1] == "trainer.seed=2"
    # Resumed, the child continues from its own last.pt (which names its parent): not with
    # init_from too, which mt.train refuses.
    resumed = runs / "child-seed2" / "checkpoints" / "last.pt"
    resumed.parent.mkdir(parents=True)
    resumed.touch()
    command = train_command(study_runs(loaded, runs)[3], None, 1)
    assert "trainer.resume=true" in command
    assert not [o for o in command if o.startswith("trainer.init_from")]
    # Trained several at once, the child waits until its parent's directory is finished.
    child_run, parent = study_runs(loaded, runs)[1:3]  # seed 1's child, seed 2's parent
    assert parent.directory.name == "parent-seed2" and child_run.directory.name == "child-seed1"
    assert waits_for(child_run, [runs / "parent-seed1", parent.directory])
    assert not waits_for(child_run, [parent.directory, child_run.directory])
    assert not waits_for(parent, [runs / "parent-seed1", child_run.directory])
    # A run named by a longer name is another run: parent-seed10 is not parent-seed1.
    assert not waits_for(child_run, [runs / "parent-seed10", runs / "parent-seed"])
    assert waits_for(
        replace(child_run, overrides=[f"x=[{runs.resolve()}/parent-seed1]"]),
        [runs / "parent-seed1"],
    )


def test_a_run_another_process_is_training_is_waited_for_not_trained_again(tmp_path, capsys):
    # A study beside this one trains the run: its lock is held until it has finished.
    study = load_study(study_file(tmp_path / "s.yaml", tmp_path / "cache", seeds=[1]))
    run = study_runs(study, tmp_path / "runs")[0]
    run.directory.mkdir(parents=True)
    results = run.directory / "results.json"
    finish = (
        f"import time, pathlib; time.sleep(2); pathlib.Path({str(results)!r}).write_text('{{}}')"
    )
    other = subprocess.Popen([sys.executable, "-c", finish])
    (run.directory / LOCK).write_text(f"{other.pid}@{socket.gethostname()}\n")
    train_all([run], None, threads=1, jobs=2)
    assert other.poll() is not None  # returned only once the other process had ended
    assert capsys.readouterr().out == f"{run.directory}: finished, kept\n"


def test_two_studies_started_together_share_their_run_and_train_it_once(memorise_root, tmp_path):
    rows = [{"name": "rnn", "overrides": ["+experiment=rnn", *TINY_MODELS["rnn"]]}]
    runs = tmp_path / "runs"
    studies = []
    for name in ("first", "second"):
        lean = {"rows": rows, "seeds": [1], "ensemble": False, "long_inputs": [], "examples": 0}
        study = study_file(tmp_path / f"{name}.yaml", tmp_path / "cache", **lean)
        command = [sys.executable, "-m", "mt.study", str(study), "--runs", str(runs)]
        command += ["--data-root", str(memorise_root), "--threads", "1"]
        studies.append(subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True))
    outputs = [study.communicate(timeout=600)[0] for study in studies]
    assert [study.returncode for study in studies] == [0, 0], outputs
    # One of them trained it (one mt.train that finished, not refused), the other waited.
    trained = json.loads((runs / "rnn-seed1" / "results.json").read_text())
    assert trained["steps"] == 6
    assert sum("mt.train" in output for output in outputs) >= 1


def check_parent_path(study, child, parent: str, accepted: bool, tmp_path) -> None:
    """The child's config.yaml as if trained from parent: kept, or refused naming it."""
    trained = [
        f"trainer.init_from={parent}" if o.startswith("trainer.init_from=") else o
        for o in row_overrides(study, study.rows[1], 1, tmp_path)
    ]
    (child.directory / "config.yaml").write_text(OmegaConf.to_yaml(composed(trained)))
    if accepted:
        check_same_settings(child)
    else:
        with pytest.raises(MTError, match=f"trained with trainer.init_from={parent}"):
            check_same_settings(child)


def test_a_run_started_from_another_keeps_its_place_when_the_runs_move(tmp_path):
    # Its config names the parent by the absolute path it had; the study's {runs} is now
    # elsewhere (another machine's runs, or the kept outputs): the same run.
    rows = [
        {"name": "parent"},
        {"name": "child", "overrides": ["trainer.init_from={runs}/parent-seed1"]},
    ]
    study = load_study(study_file(tmp_path / "s.yaml", tmp_path / "cache", rows=rows, seeds=[1]))
    child = study_runs(study, tmp_path / "moved")[1]
    child.directory.mkdir(parents=True)
    for parent, accepted in (("/elsewhere/runs/parent-seed1", True), ("/elsewhere/other", False)):
        check_parent_path(study, child, parent, accepted, tmp_path)
    # Finished, it says where it trained: a path inside that directory must be exactly the
    # study's place in it, not any path that ends alike.
    where = {"directory": "/elsewhere/runs/child-seed1", "config": {}, "valid": {}, "test": {}}
    (child.directory / "results.json").write_text(json.dumps(where))
    for parent, accepted in (
        ("/elsewhere/runs/parent-seed1", True),
        ("/elsewhere/runs/old/parent-seed1", False),
        ("/other/runs/parent-seed1", False),
    ):
        check_parent_path(study, child, parent, accepted, tmp_path)


def test_a_rows_own_setting_beats_the_studys(tmp_path):
    rows = [{"name": "a"}, {"name": "b", "overrides": ["trainer.lr=1e-3"]}]
    path = study_file(tmp_path / "s.yaml", tmp_path / "cache", rows=rows)
    study = load_study(path)
    study.overrides.append("trainer.lr=3e-3")
    lrs = [composed(run.overrides)["trainer"]["lr"] for run in study_runs(study, tmp_path)]
    assert lrs == [3e-3, 1e-3, 3e-3, 1e-3]  # seeds 1 and 2 of a, b


def test_a_setting_an_older_run_lacks_counts_as_its_schema_default(tmp_path):
    study = load_study(study_file(tmp_path / "s.yaml", tmp_path / "cache", seeds=[1]))
    run = study_runs(study, tmp_path / "runs")[0]
    run.directory.mkdir(parents=True)
    older = composed(run.overrides)
    del older["trainer"]["patience"]  # the study asks the default, 10: the same run
    (run.directory / "config.yaml").write_text(OmegaConf.to_yaml(older))
    check_same_settings(run)
    del older["trainer"]["max_steps"]  # the study asks 6, the default is none: another run
    (run.directory / "config.yaml").write_text(OmegaConf.to_yaml(older))
    with pytest.raises(MTError, match="trained with trainer.max_steps=None, the study asks 6"):
        check_same_settings(run)
    (run.directory / "config.yaml").write_bytes(b"\xff\xfe\x00 binary")
    with pytest.raises(MTError, match="config.yaml: not a run's config"):
        check_same_settings(run)


def test_the_repositorys_studies_load_and_agree_on_every_run_they_share(tmp_path):
    # A run directory is named by its row and seed, so two studies naming the same row must
    # train it alike, or the second would refuse the first's run.
    settings: dict[str, tuple[Path, dict]] = {}
    for path in sorted((REPO / "studies").glob("*.yaml")):
        study = load_study(path)
        for row in (row for row in study.rows if not row.pivot):
            config = flat(composed(row_overrides(study, row, 1, tmp_path)))
            config = {k: v for k, v in config.items() if k not in LOCAL_KEYS}
            first = settings.setdefault(row.name, (path, config))
            differ = sorted(
                k for k in config.keys() | first[1].keys() if config.get(k) != first[1].get(k)
            )
            assert not differ, f"{row.name}: {path.name} and {first[0].name} differ in {differ}"
    assert {"transformer_fast", "multilingual", "rnn_2500"} <= settings.keys()


def test_a_run_saved_before_a_setting_was_renamed_is_still_the_studys_run(tmp_path):
    study = load_study(study_file(tmp_path / "s.yaml", tmp_path / "cache", seeds=[1]))
    run = study_runs(study, tmp_path / "runs")[0]
    run.directory.mkdir(parents=True)
    saved = composed(run.overrides)
    saved["decode"]["cache"] = saved["decode"].pop("incremental")
    (run.directory / "config.yaml").write_text(OmegaConf.to_yaml(saved))
    check_same_settings(run)  # decode.cache is today's decode.incremental: the same run
    saved["decode"]["cache"] = False
    (run.directory / "config.yaml").write_text(OmegaConf.to_yaml(saved))
    with pytest.raises(MTError, match="trained with decode.incremental=False"):
        check_same_settings(run)
