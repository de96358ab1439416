"""scripts/results.py: one command trains the recipes, writes the README table from their
results.json files, keeps finished rows and resumes unfinished ones."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from helpers import REPO, TINY_MODELS

SCRIPT = REPO / "scripts" / "results.py"
ROWS = ["transformer-fast", "transformer-en-de"]


def run_script(memorise_root, tmp_path, rows=ROWS) -> subprocess.CompletedProcess:
    tiny = [*TINY_MODELS["transformer"], "data.name=tiny", f"data.cache_dir={tmp_path / 'cache'}"]
    tiny += ["data.vocab_size=300", "trainer.max_steps=4", "trainer.valid_every=2"]
    tiny += ["trainer.warmup_steps=2", "decode.beam_size=2", "trainer.log_every=1"]
    command = [sys.executable, str(SCRIPT), f"--data-root={memorise_root}"]
    command += ["--runs", str(tmp_path / "runs"), "--readme", str(tmp_path / "README.md")]
    command += ["--threads", "1", "--only", *rows, "--set", *tiny]
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)


def test_results_command_writes_the_table_and_keeps_finished_rows(memorise_root, tmp_path):
    readme = tmp_path / "README.md"
    begin, end = "<!-- results table: scripts/results.py -->", "<!-- end of results table -->"
    readme.write_text(f"# Results\n\n{begin}\nold table\n{end}\n\nMore text.\n")
    first = run_script(memorise_root, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    text = readme.read_text()
    assert "old table" not in text and text.endswith(f"{end}\n\nMore text.\n")
    lines = text.split(begin)[1].split(end)[0].strip().splitlines()
    assert len(lines) == 2 + len(ROWS)
    for line, name in zip(lines[2:], ROWS, strict=True):
        result = json.loads((tmp_path / "runs" / name / "results.json").read_text())
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[0].endswith(f"(`{name}`)")
        assert cells[3:5] == [f"{result['valid']['bleu']:.2f}", f"{result['test']['bleu']:.2f}"]
        assert cells[7] == str(result["steps"]) == "4"
        assert result["config"]["trainer"]["num_threads"] == 1
    en_de = json.loads((tmp_path / "runs" / "transformer-en-de" / "results.json").read_text())
    assert (en_de["config"]["data"]["src_lang"], en_de["config"]["data"]["tgt_lang"]) == (
        "en",
        "de",
    )

    # Rerun: a row trained again from nothing gives the same numbers; an unfinished one
    # resumes from its last.pt.
    fast, en_de_dir = (
        tmp_path / "runs" / "transformer-fast",
        tmp_path / "runs" / "transformer-en-de",
    )
    before = json.loads((fast / "results.json").read_text())
    shutil.rmtree(fast)
    (en_de_dir / "results.json").unlink()
    again = run_script(memorise_root, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "trainer.resume=true" in again.stdout
    after = json.loads((fast / "results.json").read_text())
    for key in ("valid", "test", "selection", "steps"):
        assert after[key] == before[key]
    assert (en_de_dir / "results.json").is_file()

    # And again: every row finished, so each is kept and the README stays as it is.
    table, kept = readme.read_bytes(), (fast / "results.json").read_bytes()
    third = run_script(memorise_root, tmp_path)
    assert third.returncode == 0, third.stderr[-3000:]
    assert third.stdout.count(": finished in ") == len(ROWS)
    assert readme.read_bytes() == table and (fast / "results.json").read_bytes() == kept

    # A call for one row keeps the other finished rows in the table.
    one = run_script(memorise_root, tmp_path, rows=["transformer-fast"])
    assert one.returncode == 0, one.stderr[-3000:]
    assert readme.read_bytes() == table


def test_the_multilingual_command_compares_one_model_with_four_and_pivoting(
    multilingual_root, tmp_path
):
    readme = tmp_path / "multilingual.md"
    begin = "<!-- multilingual table: scripts/results.py --multilingual -->"
    end = "<!-- end of multilingual table -->"
    readme.write_text(f"{begin}\nold\n{end}\n")
    tiny = [*TINY_MODELS["transformer"], "data.name=multi", f"data.cache_dir={tmp_path / 'c'}"]
    tiny += ["data.vocab_size=300", "trainer.max_steps=4", "trainer.valid_every=2"]
    tiny += ["trainer.warmup_steps=2", "decode.beam_size=2", "decode.max_len_b=5"]
    command = [sys.executable, str(SCRIPT), f"--data-root={multilingual_root}", "--multilingual"]
    command += ["--runs", str(tmp_path / "runs"), "--readme", str(readme), "--threads", "1"]
    command += ["--set", *tiny]
    first = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    runs = tmp_path / "runs"
    multi = json.loads((runs / "transformer-multilingual" / "results.json").read_text())
    assert multi["config"]["data"]["directions"] == ["de-en", "en-de", "fr-en", "en-fr"]
    directions, trained = readme.read_text().split(begin)[1].split(end)[0].strip().split("\n\n")
    rows = directions.splitlines()[2:]
    assert [r.split("|")[1].strip() for r in rows] == [
        "de-en",
        "en-de",
        "fr-en",
        "en-fr",
        "de-fr, zero-shot",
        "fr-de, zero-shot",
    ]
    fr_en = json.loads((runs / "transformer-fast-fr-en" / "results.json").read_text())["test"]
    ours = multi["test"]["directions"]["fr-en"]
    assert rows[2] == (
        f"| fr-en | {fr_en['bleu']:.2f} / {fr_en['chrf']:.2f} | "
        f"{ours['bleu']:.2f} / {ours['chrf']:.2f} ({ours['percent_in_target']:.0f}% in en) |"
    )
    labels = [r.split("|")[1].strip() for r in trained.splitlines()[2:]]
    assert labels[-1] == "Transformer, multilingual (`transformer-multilingual`)"
    assert len(labels) == 5 and all(r.count(" | ") == 12 for r in trained.splitlines()[2:])
    pivot = json.loads((runs / "pivot-de-fr.json").read_text())
    assert f"pivot through en: {pivot['bleu']:.2f} / {pivot['chrf']:.2f}" in rows[4]
    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0 and again.stdout.count(": finished in ") == 5
