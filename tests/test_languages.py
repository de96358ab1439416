"""The language check: a file whose name or text contradicts the model's languages gets one
warning line before decoding, from mt.evaluate and mt.translate; the right files get none."""

from __future__ import annotations

import pytest
from helpers import multi30k_lines, run_tool, write_lines

from mt.data.languages import language_warnings, suffix_language, trigram_profile
from mt.decoding.translator import Translator

SIDES = {"src": ("source", ["de"], ["en"]), "tgt": ("target", ["en"], ["de"])}


@pytest.fixture(scope="module")
def profiles():
    """Profiles as a de->en training run keeps them: from its held-out text."""
    return {lang: trigram_profile(multi30k_lines("val", lang, 40)) for lang in ("de", "en")}


@pytest.mark.parametrize(
    ("name", "language"),
    [("test.fr", "fr"), ("test_2016_flickr.cs.gz", "cs"), ("notes.txt", None), ("de", None)],
)
def test_a_file_suffix_names_a_language_only_when_it_is_one(name, language):
    assert suffix_language(name) == language


@pytest.mark.parametrize(
    ("lang", "side", "expected"),
    [
        ("de", "src", []),
        ("en", "tgt", []),
        ("fr", "src", ["unlike the de text"]),
        ("cs", "src", ["unlike the de text"]),
        ("en", "src", ["reads as en text, the model's other side, not de"]),
        ("de", "tgt", ["reads as de text, the model's other side, not en"]),
    ],
)
def test_text_is_told_by_its_trigrams(profiles, lang, side, expected):
    lines = multi30k_lines("test_2016_flickr", lang, 20)
    warnings = language_warnings("input", lines, *SIDES[side], profiles)
    assert len(warnings) == len(expected)
    for warning, needle in zip(warnings, expected, strict=True):
        assert warning.startswith("input: ") and needle in warning


def test_a_few_lines_are_not_judged_by_their_text(profiles):
    lines = multi30k_lines("test_2016_flickr", "cs", 3)
    assert language_warnings("input", lines, *SIDES["src"], profiles) == []


def warnings_in(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning: ")]


def test_evaluate_warns_of_a_french_source_and_swapped_files(chosen_run, tmp_path):
    final = chosen_run[0] / chosen_run[1]["final"]
    french = write_lines(tmp_path / "test.fr", multi30k_lines("test_2016_flickr", "fr", 20))
    english = write_lines(tmp_path / "test.en", multi30k_lines("test_2016_flickr", "en", 20))
    german = write_lines(tmp_path / "ref.txt", multi30k_lines("test_2016_flickr", "de", 20))
    args = [f"checkpoint={final}", f"src={french}", f"ref={english}", f"hyps={tmp_path}/h1"]
    result = run_tool("evaluate", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (named, unlike) = warnings_in(result.stderr)
    assert f"{french}: named as fr text, but the model's source is de" in named
    assert f"{french}: unlike the de text the model was trained on" in unlike
    swapped = [f"checkpoint={final}", f"src={english}", f"ref={german}", f"hyps={tmp_path}/h2"]
    result = run_tool("evaluate", *swapped, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    found = warnings_in(result.stderr)
    assert len(found) == 3, found  # test.en: its name, then its text; ref.txt: its text
    assert f"{english}: reads as en text, the model's other side, not de" in found[1]
    assert f"{german}: reads as de text, the model's other side, not en" in found[2]


def test_translate_warns_before_decoding_and_not_for_the_right_language(chosen_run, tmp_path):
    final = chosen_run[0] / chosen_run[1]["final"]
    czech = write_lines(tmp_path / "in.cs", multi30k_lines("test_2016_flickr", "cs", 12))
    result = run_tool("translate", f"checkpoint={final}", f"input={czech}", cwd=tmp_path)
    assert result.returncode == 0 and len(result.stdout.splitlines()) == 12
    assert len(warnings_in(result.stderr)) == 2, result.stderr
    german = "\n".join(multi30k_lines("test_2016_flickr", "de", 12)) + "\n"
    result = run_tool("translate", f"checkpoint={final}", cwd=tmp_path, stdin=german)
    assert result.returncode == 0 and warnings_in(result.stderr) == []


def test_an_export_keeps_the_profiles_and_warns_alike(exported, tmp_path):
    czech = write_lines(tmp_path / "in.txt", multi30k_lines("test_2016_flickr", "cs", 12))
    args = ["engine=ctranslate2", f"model_dir={exported}", f"input={czech}"]
    result = run_tool("translate", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (warning,) = warnings_in(result.stderr)
    assert f"{czech}: unlike the de text the model was trained on" in warning


def test_profiles_kept_by_side_in_older_checkpoints_still_check(chosen_run, profiles):
    final = chosen_run[0] / chosen_run[1]["final"]
    new = Translator.from_checkpoint(final, "cpu")
    old = Translator(
        new.engine, new.tokenizer, new.config, {"src": profiles["de"], "tgt": profiles["en"]}
    )
    english = multi30k_lines("test_2016_flickr", "en", 20)
    (warning,) = old.language_warnings("input", english, "src")
    assert "reads as en text, the model's other side, not de" in warning
