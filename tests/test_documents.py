"""Paragraphs as people paste them (mt/decoding/documents.py): a line of several sentences is
translated sentence by sentence and joined with its spacing, a sentence too long for the
model is split and translated whole, never cut; segmentation off is each line as one input."""

from __future__ import annotations

import json
import subprocess
import sys

import sentencex
from helpers import (
    REPO,
    assert_clean_failure,
    multi30k_lines,
    run_in_process,
    run_tool,
    write_lines,
)

from mt import evaluate, translate
from mt.common.checkpoint import load_checkpoint, save_checkpoint
from mt.decoding.documents import fitted, sentences, split_lines
from mt.decoding.translator import Translator
from mt.evaluation.long_inputs import joined_scores

SENTENCES = multi30k_lines("train", "de", 6)  # memorised by the tiny model, each one sentence


def translate_file(checkpoint, lines: list[str], tmp_path, capsys, monkeypatch, *extra: str):
    """mt.translate of lines (input= and output= files): its result and the output lines."""
    source = write_lines(tmp_path / "in.de", lines)
    output = tmp_path / "out.en"
    output.unlink(missing_ok=True)
    args = [f"checkpoint={checkpoint}", f"input={source}", f"output={output}", *extra]
    result = run_in_process(translate.main, *args, capsys=capsys, monkeypatch=monkeypatch)
    assert result.returncode == 0, result.stderr
    return result, output.read_text(encoding="utf-8").split("\n")[:-1]


def test_a_paragraph_is_its_sentences_translated_one_by_one_and_joined(
    moved_checkpoint, tmp_path, capsys, monkeypatch
):
    assert all(len(sentences(s, "de")) == 1 for s in SENTENCES)
    alone = Translator.from_checkpoint(moved_checkpoint, "cpu").translate(SENTENCES)
    lines = [" ".join(SENTENCES), "", "  " + "  ".join(SENTENCES[:3]), SENTENCES[3]]
    _, out = translate_file(moved_checkpoint, lines, tmp_path, capsys, monkeypatch)
    # Byte for byte the sentences translated one per line, between the line's own spacing;
    # the blank line stays blank.
    assert out == [" ".join(alone), "", "  " + "  ".join(alone[:3]), alone[3]]
    # Segmentation off: each line one input, as before (the model drops most of a paragraph).
    _, whole = translate_file(
        moved_checkpoint, lines, tmp_path, capsys, monkeypatch, "segment=false"
    )
    model = Translator.from_checkpoint(moved_checkpoint, "cpu")
    assert whole == model.translate(lines)
    assert len(whole[0].split()) < len(out[0].split())


def test_evaluate_splits_paragraphs_when_asked_and_records_it(
    moved_checkpoint, tmp_path, capsys, monkeypatch
):
    lines = [" ".join(SENTENCES[:3]), " ".join(SENTENCES[3:])]
    _, translated = translate_file(moved_checkpoint, lines, tmp_path, capsys, monkeypatch)
    src = write_lines(tmp_path / "paragraphs.de", lines)
    ref = write_lines(tmp_path / "paragraphs.en", translated)
    for segment in ("true", "false"):
        hyps = tmp_path / f"segment-{segment}.hyp"
        args = [f"checkpoint={moved_checkpoint}", f"src={src}", f"ref={ref}", f"hyps={hyps}"]
        result = run_in_process(
            evaluate.main, *args, f"segment={segment}", capsys=capsys, monkeypatch=monkeypatch
        )
        assert result.returncode == 0, result.stderr
        metrics = json.loads(hyps.with_name(hyps.name + ".metrics.json").read_text())
        assert metrics["segment"] == (segment == "true")
        assert (metrics["bleu"] > 99.99) == (segment == "true")
    assert (tmp_path / "segment-true.hyp").read_text(encoding="utf-8").splitlines() == translated


def test_a_sentence_too_long_for_the_model_is_split_translated_whole_and_warned_about(
    memorised_run, tmp_path
):
    # The memorised model with 64 positions (its positions are a table, not weights).
    payload = load_checkpoint(memorised_run[0] / "checkpoints" / "final.pt")
    payload["config"]["model"]["max_positions"] = 64
    short = tmp_path / "short.pt"
    save_checkpoint(payload, short)
    words = " ".join(SENTENCES * 5).replace(".", "").split()[:300]
    assert len(words) == 300
    source = write_lines(tmp_path / "long.de", [" ".join(words)])
    result = run_tool("translate", f"checkpoint={short}", f"input={source}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "input line 1: a sentence too long for the model" in result.stderr
    assert "cut" not in result.stderr
    pieces = int(result.stderr.split("translated in ")[1].split()[0])
    model = Translator.from_checkpoint(short, "cpu")
    limit = 32  # half the positions: room for the translation
    parts = fitted(" ".join(words), lambda t: len(model.tokenizer.encode_src([t])[0]) <= limit)
    assert len(parts) == pieces > 1 and "".join(parts) == " ".join(words)
    assert result.stdout == " ".join(model.translate([p.strip() for p in parts])) + "\n"


def test_a_language_the_segmenter_cannot_know_falls_back_to_english_with_one_warning(
    moved_checkpoint, tmp_path, capsys, monkeypatch, caplog
):
    # "Mr." ends no sentence for English's rules but does for Russian's: the fallback shows.
    lines = ["Mr. " + SENTENCES[0] + " " + SENTENCES[1]] * 3
    _, out = translate_file(
        moved_checkpoint, lines, tmp_path, capsys, monkeypatch, "src_lang=german"
    )
    warnings = [r.getMessage() for r in caplog.records if "'german'" in r.getMessage()]
    assert len(warnings) == 1 and "English rules" in warnings[0]
    _, english = translate_file(
        moved_checkpoint, lines, tmp_path, capsys, monkeypatch, "src_lang=en"
    )
    _, russian = translate_file(
        moved_checkpoint, lines, tmp_path, capsys, monkeypatch, "src_lang=ru"
    )
    assert out == english != russian


def test_pieces_join_back_into_the_line_and_each_fits():
    line = "a b c, d e f; g h i j k l m n o p q r s t u v w x y z " * 3

    def fits(text: str) -> bool:
        return len(text.split()) <= 7

    parts = fitted(line.strip(), fits)
    assert "".join(parts) == line.strip() and all(fits(p) for p in parts)
    # A clause's punctuation is preferred to any space near the middle.
    assert fitted("aaa bbb, ccc ddd eee", lambda t: len(t) <= 12)[0] == "aaa bbb, "
    documents = split_lines(["  Ein Hund.  Eine Katze!  ", "", "   "], "de", fits, 1, True)
    assert documents.texts() == ["Ein Hund.", "Eine Katze!"]
    assert documents.joined(["A dog.", "A cat!"]) == ["  A dog.  A cat!  ", "", ""]
    assert list(sentencex.segment("de", "Ein Hund.  Eine Katze!")) == ["Ein Hund.  ", "Eine Katze!"]


def test_the_segmentation_script_measures_boundaries_on_joined_test_sentences():
    command = [sys.executable, str(REPO / "scripts" / "segmentation_quality.py")]
    command += ["--data-root", str(REPO / "tests" / "data"), "--languages", "de", "cs"]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    rows = {
        line.split(" | ")[0].strip("| "): line.split(" | ") for line in result.stdout.splitlines()
    }
    for lang in ("de", "cs"):
        found, true = rows[lang][1].rstrip("%").split("% of ")
        assert float(found) > 80 and int(true) > 0


def test_a_megabyte_line_is_refused_in_one_line_and_nothing_is_written(
    moved_checkpoint, tmp_path, capsys, monkeypatch
):
    source = write_lines(tmp_path / "huge.de", [SENTENCES[0], "Hund " * 200_000])
    output = tmp_path / "out.en"
    args = [f"checkpoint={moved_checkpoint}", f"input={source}", f"output={output}"]
    result = run_in_process(translate.main, *args, capsys=capsys, monkeypatch=monkeypatch)
    assert_clean_failure(result, f"error: {source}: line 2: 1000000 characters, past the 100000")
    assert result.stderr.count("\n") == 1 and not output.exists()


def test_a_studys_long_inputs_split_into_sentences_score_as_the_sentences_do(moved_checkpoint):
    translator = Translator.from_checkpoint(moved_checkpoint, "cpu")
    sources, references = multi30k_lines("train", "de", 30), multi30k_lines("train", "en", 30)
    entry = joined_scores(translator, sources, references, 6, None, segmented=True)
    # The memorised sentences one by one are its references; six of them as one input are not.
    assert entry["segmented"]["bleu"] > 95 and entry["segmented"]["length_ratio"] > 0.95
    assert entry["bleu"] < entry["segmented"]["bleu"] - 20
