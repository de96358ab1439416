"""Where and how much runs differ, as sacreBLEU computes it: mt.compare's intervals and
p-values against the sacrebleu command line on the same files, the cases whose answer is
known, and scores by source length."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from helpers import REPO, assert_clean_failure, multi30k_lines, run_in_process, write_lines
from sacrebleu.metrics import BLEU, CHRF

from mt import compare
from mt.evaluation.scores import by_source_length, word_f_by_frequency, words
from mt.evaluation.significance import significance

REFERENCES = multi30k_lines("train", "en", 300)


def shortened(lines: list[str], every: int) -> list[str]:
    """Every every-th line without its last word: a slightly worse system."""
    return [" ".join(s.split()[:-1]) if k % every == 0 else s for k, s in enumerate(lines)]


def swapped_third(lines: list[str]) -> list[str]:
    """A third of the lines replaced by another sentence's translation."""
    return [lines[(k + 7) % len(lines)] if k % 3 == 0 else s for k, s in enumerate(lines)]


def documented_command() -> list[str]:
    """The cross-check command docs/decoding.md prints, word by word."""
    page = (REPO / "docs" / "decoding.md").read_text(encoding="utf-8")
    (line,) = [x for x in page.splitlines() if x.startswith("sacrebleu REF -i BASE OTHER")]
    return line.split("#")[0].split()


def command_line(tmp_path, systems: dict[str, list[str]], test: str) -> dict[str, list[str]]:
    """The docs' sacrebleu command on these systems (--paired-TEST): each system's printed
    cells, in order."""
    ref = write_lines(tmp_path / "ref.en", REFERENCES)
    files = [str(write_lines(tmp_path / name, lines)) for name, lines in systems.items()]
    words = documented_command()
    words = [str(ref) if w == "REF" else w for w in words[1:] if w not in ("BASE", "OTHER")]
    words[words.index("-i") + 1 : words.index("-i") + 1] = files
    words[words.index("--paired-bs")] = f"--paired-{test}"
    command = [sys.executable, "-m", "sacrebleu", *words]
    text = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    cells = {}
    for name, path in zip(systems, files, strict=True):
        (line,) = [row for row in text.splitlines() if re.search(rf"│ +(Baseline: )?{path} │", row)]
        following = text.splitlines()[text.splitlines().index(line) + 1]
        cells[name] = re.findall(r"[\d.]+", line.split("│", 2)[2])
        cells[name] += re.findall(r"p = ([\d.]+)", following)
    return cells


def test_intervals_and_p_values_equal_the_sacrebleu_command_line(tmp_path):
    systems = {"base": shortened(REFERENCES, 3), "other": shortened(REFERENCES, 5)}
    tested = significance([(name, [hyps]) for name, hyps in systems.items()], REFERENCES)
    bootstrap = command_line(tmp_path, systems, "bs")
    randomized = command_line(tmp_path, systems, "ar")
    for t in tested:
        # BLEU score (mean ± ci), chrF score (mean ± ci), then p BLEU, p chrF: as printed
        ours = [f"{x:.1f}" for m in ("bleu", "chrf") for x in (t.score[m], t.mean[m], t.ci[m])]
        if t.p_bootstrap is not None:
            ours += [f"{t.p_bootstrap[m]:.4f}" for m in ("bleu", "chrf")]
        assert ours == bootstrap[t.name]
        expected = [f"{t.score[m]:.1f}" for m in ("bleu", "chrf")]
        if t.p_randomization is not None:
            expected += [f"{t.p_randomization[m]:.4f}" for m in ("bleu", "chrf")]
        assert expected == randomized[t.name]


def test_identical_outputs_are_not_significant():
    output = shortened(REFERENCES, 3)
    _, same = significance([("a", [output]), ("b", [list(output)])], REFERENCES)
    assert same.p_bootstrap == same.p_randomization == {"bleu": 1.0, "chrf": 1.0}


def test_a_third_of_the_lines_swapped_is_significantly_worse():
    systems = [("a", [REFERENCES]), ("b", [swapped_third(REFERENCES)])]
    base, worse = significance(systems, REFERENCES)
    assert worse.score["bleu"] < base.score["bleu"] - 20
    assert max(worse.p_bootstrap.values()) < 0.01 and max(worse.p_randomization.values()) < 0.01


def printed(tested) -> list[str]:
    """What a report prints of each system: score, mean ± interval, p-values."""
    cells = []
    for t in tested:
        for m in ("bleu", "chrf"):
            cells += [f"{t.score[m]:.2f}", f"{t.mean[m]:.2f}", f"{t.ci[m]:.2f}"]
            if t.p_bootstrap is not None:
                cells += [f"{t.p_bootstrap[m]:.4f}", f"{t.p_randomization[m]:.4f}"]
    return cells


def test_the_same_outputs_repeated_as_seeds_change_no_interval_and_no_p():
    base, other = shortened(REFERENCES, 3), swapped_third(shortened(REFERENCES, 5))
    once = printed(significance([("a", [base]), ("b", [other])], REFERENCES))
    for k in (2, 3):
        repeated = significance([("a", [base] * k), ("b", [other] * k)], REFERENCES)
        assert printed(repeated) == once


def brute_force_cluster_test(systems, references, seed, resamples, trials, metric):
    """Every resample and trial scored by sacreBLEU on the full lists of lines it stands
    for: clusters of a sentence's seeds drawn as sacreBLEU's generator draws sentences."""
    n = len(references)
    draws = np.random.default_rng(seed).choice(n, size=(resamples, n), replace=True)
    swaps = np.random.default_rng(seed).integers(2, size=(trials, n), dtype=bool)

    def score(seeds, sentences):
        hyps = [hyps[i] for i in sentences for hyps in seeds]
        return metric.corpus_score(hyps, [[references[i] for i in sentences for _ in seeds]]).score

    def mixed(a, b, swap):
        """Seed by seed, a's translation of each sentence, b's where swap says."""
        return [[(b if swap[i] else a)[s][i] for i in range(n)] for s in range(len(a))]

    boot = [np.array([score(seeds, d) for d in draws]) for _, seeds in systems]
    found = []
    for k, (_, seeds) in enumerate(systems):
        ordered = np.sort(boot[k])
        lower, upper = ordered[resamples // 40], ordered[resamples - resamples // 40 - 1]
        entry = {"mean": boot[k].mean(), "ci": (upper - lower) / 2}
        if k:
            observed = abs(score(seeds, range(n)) - score(systems[0][1], range(n)))
            diffs = np.abs(boot[k] - boot[0])
            entry["p_bootstrap"] = (np.sum(diffs - diffs.mean() > observed) + 1) / (resamples + 1)
            base = systems[0][1]
            a = [score(mixed(base, seeds, w), range(n)) for w in swaps]
            b = [score(mixed(seeds, base, w), range(n)) for w in swaps]
            entry["p_randomization"] = (np.sum(np.abs(np.subtract(a, b)) > observed) + 1) / (
                trials + 1
            )
        found.append(entry)
    return found


def test_three_seeds_are_resampled_as_clusters_of_a_sentences_translations():
    references = REFERENCES[:40]
    base = [shortened(references, k) for k in (2, 3, 4)]
    other = [swapped_third(shortened(references, k)) for k in (3, 5, 7)]
    systems = [("base", base), ("other", other)]
    tested = significance(systems, references, seed=7, resamples=60, trials=40)
    for metric, key in ((BLEU(), "bleu"), (CHRF(), "chrf")):
        expected = brute_force_cluster_test(systems, references, 7, 60, 40, metric)
        for t, e in zip(tested, expected, strict=True):
            assert t.mean[key] == pytest.approx(e["mean"], abs=1e-4)
            assert t.ci[key] == pytest.approx(e["ci"], abs=1e-4)
        assert tested[1].p_bootstrap[key] == pytest.approx(expected[1]["p_bootstrap"])
        assert tested[1].p_randomization[key] == pytest.approx(expected[1]["p_randomization"])


@pytest.fixture
def two_runs(memorised_run, tmp_path):
    """The memorised run as it is, and a copy whose test output has a third of its lines
    swapped."""
    run_dir, _ = memorised_run
    runs = {}
    for name in ("good", "worse"):
        runs[name] = shutil.copytree(
            run_dir, tmp_path / name, ignore=shutil.ignore_patterns("*.pt")
        )
    hyps = (runs["worse"] / "test.hyp.en").read_text(encoding="utf-8").splitlines()
    write_lines(runs["worse"] / "test.hyp.en", swapped_third(hyps))
    return runs


def compare_in_process(*args: str, capsys, monkeypatch):
    return run_in_process(compare.main, *args, capsys=capsys, monkeypatch=monkeypatch)


def test_compare_tests_every_run_against_the_baseline(two_runs, capsys, monkeypatch):
    good, worse = str(two_runs["good"]), str(two_runs["worse"])
    args = [good, worse, "--significance", "--baseline", worse]
    result = compare_in_process(*args, capsys=capsys, monkeypatch=monkeypatch)
    assert result.returncode == 0, result.stderr
    rows = [
        line
        for line in result.stdout.splitlines()
        if line.startswith(f"| {worse}") or line.startswith(f"| {good}")
    ]
    table = rows[2:]  # after the two rows of the results table
    assert table[0].startswith(f"| {worse} (baseline) |")
    p_bleu = float(table[1].split("|")[4].split("/")[0])
    assert table[1].startswith(f"| {good} |") and p_bleu < 0.05
    assert "1000 resamples" in result.stdout and "10000 trials" in result.stdout


def test_runs_that_cannot_be_tested_together_are_refused_in_one_line(
    two_runs, memorise_root, tmp_path, capsys, monkeypatch
):
    good, worse = two_runs["good"], two_runs["worse"]
    other = tmp_path / "other-data" / "tiny"
    shutil.copytree(memorise_root / "tiny", other)
    write_lines(other / "test_2016_flickr.en", multi30k_lines("val", "en", 30))
    results = json.loads((worse / "results.json").read_text())
    results["config"]["data"]["root"] = str(other.parent)
    (worse / "results.json").write_text(json.dumps(results))
    result = compare_in_process(
        str(good), str(worse), "--significance", capsys=capsys, monkeypatch=monkeypatch
    )
    assert_clean_failure(result, f"error: {worse}: scored against other references than")
    (good / "test.hyp.en").unlink()
    result = compare_in_process(str(good), "--significance", capsys=capsys, monkeypatch=monkeypatch)
    assert_clean_failure(result, f"error: {good / 'test.hyp.en'}: missing")
    result = compare_in_process(
        str(good),
        str(worse),
        "--significance",
        "--baseline",
        str(tmp_path),
        capsys=capsys,
        monkeypatch=monkeypatch,
    )
    assert_clean_failure(result, f"error: --baseline {tmp_path}: not one of the runs compared")
    # A corpus no longer where the run read it: the line names mt.compare's own setting.
    results["config"]["data"]["root"] = str(tmp_path / "moved")
    (worse / "results.json").write_text(json.dumps(results))
    result = compare_in_process(
        str(worse), "--significance", capsys=capsys, monkeypatch=monkeypatch
    )
    assert_clean_failure(result, f"missing {tmp_path}/moved/tiny/test_2016_flickr.de")
    assert "point --data-root at the directory that holds tiny/" in result.stderr
    assert "data.root" not in result.stderr


def test_scores_by_source_length_equal_sacrebleu_on_each_buckets_lines():
    sources = multi30k_lines("train", "de", 300)
    hyps = shortened(REFERENCES, 4)
    buckets = by_source_length(sources, hyps, REFERENCES)
    assert [b["words"] for b in buckets] == [
        "1-5",
        "6-10",
        "11-15",
        "16-20",
        "21-25",
        "26-30",
        "31+",
    ]
    assert sum(b["sentences"] for b in buckets) == 300
    for bucket in buckets:
        low, _, high = bucket["words"].partition("-")
        high = int(high) if high else 10**9
        chosen = [
            k for k, s in enumerate(sources) if int(low.rstrip("+")) <= len(s.split()) <= high
        ]
        assert bucket["sentences"] == len(chosen)
        if chosen:
            refs = [[REFERENCES[k] for k in chosen]]
            assert bucket["bleu"] == BLEU().corpus_score([hyps[k] for k in chosen], refs).score
            assert bucket["chrf"] == CHRF().corpus_score([hyps[k] for k in chosen], refs).score
        else:
            assert bucket["bleu"] is None


def test_a_finished_run_reports_its_test_scores_by_source_length(memorised_run):
    _, results = memorised_run
    assert sum(b["sentences"] for b in results["test"]["by_length"]) == 30


def test_word_f_by_training_frequency_counts_each_word_in_its_bucket():
    counts = Counter({"the": 150, "dog": 1, "cat": 3})
    buckets = {
        b["train_count"]: b for b in word_f_by_frequency(["the dog runs"], ["the cat runs"], counts)
    }
    assert list(buckets) == ["0", "1", "2-4", "5-9", "10-99", "100+"]
    assert buckets["100+"]["f"] == 1.0 and buckets["0"]["f"] == 1.0  # "the", "runs": right
    assert (buckets["1"]["precision"], buckets["1"]["ref_words"]) == (0.0, 0)  # "dog": wrong
    assert (buckets["2-4"]["recall"], buckets["2-4"]["ref_words"]) == (0.0, 1)  # "cat": missed
    assert buckets["5-9"]["ref_words"] == 0


def test_a_finished_run_reports_word_f_by_training_frequency(memorised_run, memorise_root):
    _, results = memorised_run
    buckets = results["test"]["word_f_by_frequency"]
    references = multi30k_lines("train", "en", 30)  # the memorisation corpus's test side
    assert sum(b["ref_words"] for b in buckets) == sum(len(words(r)) for r in references)
    # Every test word is a training word (the corpus is its own test set): none is unseen.
    assert buckets[0]["ref_words"] == 0


def test_compare_shows_the_sentences_two_runs_differ_most_in(two_runs, capsys, monkeypatch):
    good, worse = str(two_runs["good"]), str(two_runs["worse"])
    args = [good, worse, "--examples", "3"]
    result = compare_in_process(*args, capsys=capsys, monkeypatch=monkeypatch)
    assert result.returncode == 0, result.stderr
    header = f"{worse} against {good}: the 3 test sentences whose chrF differs most"
    rows = result.stdout.split(header)[1].strip().splitlines()[2:]
    assert len(rows) == 3
    hyps = (two_runs["worse"] / "test.hyp.en").read_text().splitlines()
    swapped = {hyps[k] for k in range(0, len(hyps), 3)}  # the lines that were replaced
    assert all(row.split(" | ")[-1].removesuffix(" |") in swapped for row in rows)
