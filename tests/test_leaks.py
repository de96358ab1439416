"""The leak audit: held-out pairs (and sources) that training also holds, counted exactly and
after normalisation, on real files."""

from __future__ import annotations

from dataclasses import replace

from helpers import multi30k_lines, write_corpus

from mt.config.schema import DataConfig
from mt.data.readers import read_split, training_pairs
from mt.evaluation.leaks import leak_audit, normalised


def audit(tmp_path, copied: int) -> dict:
    """A corpus of 60 training pairs plus copied of its 20 test pairs, audited."""
    train = (multi30k_lines("train", "de", 60), multi30k_lines("train", "en", 60))
    test = (multi30k_lines("val", "de", 20), multi30k_lines("val", "en", 20))
    with_copies = tuple(
        side + test_side[:copied] for side, test_side in zip(train, test, strict=True)
    )
    root = write_corpus(
        tmp_path, "c", {"train": with_copies, "val": test, "test_2016_flickr": test}
    )
    data = replace(DataConfig(), root=str(root), name="c")
    held_out = {split: list(zip(*read_split(data, split), strict=True)) for split in ("test",)}
    return leak_audit(training_pairs(data), held_out)["test"]


def test_three_test_pairs_copied_into_train_are_three_leaks(tmp_path):
    assert audit(tmp_path / "a", copied=3) == {
        "sentences": 20,
        "pairs": 3,
        "sources": 3,
        "pairs_normalised": 3,
        "sources_normalised": 3,
    }
    assert audit(tmp_path / "b", copied=0)["pairs"] == 0


def test_normalising_finds_what_differs_only_in_case_punctuation_and_spaces():
    held_out = [("Ein Hund rennt.", "A dog runs."), ("Zwei Männer.", "Two men.")]
    train = [("ein  Hund rennt", "a dog, runs!"), ("Zwei Männer.", "Two other men.")]
    assert leak_audit(train, {"test": held_out})["test"] == {
        "sentences": 2,
        "pairs": 0,
        "sources": 1,  # "Zwei Männer." exactly
        "pairs_normalised": 1,  # the dog, with case, commas and spaces ignored
        "sources_normalised": 2,
    }
    assert normalised("  A  dog, RUNS! ") == "a dog runs"


def test_a_finished_run_reports_its_leaks(memorised_run):
    _, results = memorised_run
    # The memorisation corpus is its own valid and test split: every pair is a leak.
    assert results["leaks"]["test"]["pairs"] == results["leaks"]["test"]["sentences"] == 30
