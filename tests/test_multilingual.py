"""One model for several directions (data.directions): target tags, sampling by direction,
per-direction validation and results, zero-shot test, and the tools' tgt_lang."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import numpy as np
import pytest
from helpers import (
    http_get,
    http_post,
    make_config,
    multi30k_lines,
    run_in_process,
    run_tool,
    scalars,
    serving,
    write_lines,
)
from sacrebleu.metrics import BLEU

from mt import evaluate, translate
from mt.common.errors import MTError
from mt.common.files import sha256_file
from mt.config.checks import check_data
from mt.config.schema import DataConfig, TrainSource
from mt.data.batches import dropped_by, train_batches
from mt.data.corpus import load_corpus
from mt.data.directions import epoch_weights, sampling_weights, source_marks, tag
from mt.data.languages import percent_in, trigram_profile
from mt.decoding.translator import Translator
from mt.deploy.engine import ctranslate2_translator
from mt.evaluation.scores import word_f_by_frequency, words
from mt.training.trainer import train

DIRECTIONS = ["de-en", "en-de", "de-fr"]
PAIRS = 16


@pytest.fixture(scope="module")
def multilingual_run(multilingual_root, cache_dir, tmp_path_factory):
    """A tiny Transformer that learns the 16 pairs of every direction by heart."""
    run_dir = tmp_path_factory.mktemp("multilingual")
    config = make_config(
        multilingual_root,
        "multi",
        cache_dir,
        f"data.directions=[{','.join(DIRECTIONS)}]",
        "trainer.max_steps=300",
        "trainer.valid_every=150",
    )
    return run_dir, train(config, run_dir)


def test_tags_are_control_pieces_added_by_id_and_never_printed(multilingual_run):
    run_dir, _ = multilingual_run
    tokenizer = Translator.from_checkpoint(run_dir / "checkpoints" / "final.pt", "cpu").tokenizer
    assert tokenizer.target_languages == ["en", "de", "fr"]
    fr = tokenizer.tag_id("fr")
    tagged = tokenizer.encode_src(["Ein Hund."], "fr")[0]
    assert tagged[0] == fr and tagged[1:] == tokenizer.encode_src(["Ein Hund."])[0]
    assert fr not in tokenizer.encode_src(["<2fr> Ein Hund."])[0]  # the text is only text
    assert tag("fr") not in tokenizer.decode_tgt([[fr, *tagged[1:-1]]])[0]


def test_one_model_translates_each_sentence_into_the_language_asked_for(multilingual_run):
    run_dir, results = multilingual_run
    translator = Translator.from_checkpoint(run_dir / results["final"], "cpu")
    german = multi30k_lines("train", "de", PAIRS)
    for lang in ("en", "fr"):
        out = translator.translate(german, tgt_lang=lang)
        right = sum(a == b for a, b in zip(out, multi30k_lines("train", lang, PAIRS), strict=True))
        assert right >= PAIRS - 2, (lang, out)
    back = translator.translate(multi30k_lines("train", "en", PAIRS), tgt_lang="de")
    assert sum(a == b for a, b in zip(back, german, strict=True)) >= PAIRS - 2
    for hyp_file in run_dir.glob("*.hyp.*"):
        assert "<2" not in hyp_file.read_text(encoding="utf-8")


def test_validation_results_and_hypotheses_are_per_direction(multilingual_run):
    run_dir, results = multilingual_run
    test = json.loads((run_dir / "results.json").read_text())["test"]
    assert list(test["directions"]) == [*DIRECTIONS, "en-fr"]  # en-fr: zero-shot
    assert test["zero_shot"] == ["en-fr"]
    trained = [test["directions"][d]["bleu"] for d in DIRECTIONS]
    assert test["bleu"] == pytest.approx(np.mean(trained))
    # Learnt by heart: what it writes for each trained direction is in the language asked for.
    assert all(test["directions"][d]["percent_in_target"] >= 85 for d in DIRECTIONS), test
    for direction in DIRECTIONS:
        assert sorted(scalars(run_dir, f"valid/bleu/{direction}")) == [150, 300]
        assert len((run_dir / f"valid.hyp.{direction}").read_text().splitlines()) == PAIRS
    assert (run_dir / "test.hyp.en-fr").is_file()


def test_a_language_the_model_does_not_produce_fails_in_one_line(
    multilingual_run, tmp_path, capsys, monkeypatch
):
    run_dir, results = multilingual_run
    final = run_dir / results["final"]
    for args, message in (
        (["tgt_lang=cs"], "error: tgt_lang=cs: the model was not trained to produce it"),
        ([], "error: tgt_lang: required, this model translates into en, de, fr"),
    ):
        out = tmp_path / "out.txt"
        args = [f"checkpoint={final}", f"output={out}", *args]
        result = run_in_process(translate.main, *args, capsys=capsys, monkeypatch=monkeypatch)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1 and lines[0].startswith(message)
        assert not out.exists()
    args = [f"checkpoint={final}", "tgt_lang=fr"]
    result = run_tool("translate", *args, cwd=tmp_path, stdin="Ein Hund.\n")
    assert result.returncode == 0 and result.stdout.strip()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"directions": ["de"]}, "'de' is not SRC-TGT"),
        ({"directions": ["de-de"]}, "'de-de' is not SRC-TGT"),
        ({"directions": ["de-en", "de-en"]}, "names a direction twice"),
        ({"directions": ["de-xx"]}, "'xx', but Multi30k has"),
        ({"directions": ["de-en"], "direction_weights": [1, 2]}, "one weight per direction"),
        *(
            ({"directions": ["de-en", "fr-en"], "direction_weights": [weight, 1.0]}, message)
            for weight, message in [
                (1e9, r"^data.direction_weights\[0\]=1000000000.0: must be in \(0, 1000\]$"),
                (float("nan"), r"direction_weights\[0\]=nan: must be in \(0, 1000\]"),
                (float("inf"), r"direction_weights\[0\]=inf: must be in \(0, 1000\]"),
                (0.0, r"direction_weights\[0\]=0.0: must be in \(0, 1000\]"),
            ]
        ),
        ({"directions": ["de-en"], "joint_vocab": False}, "needs data.joint_vocab=true"),
        ({"directions": ["de-en"], "train_sources": [TrainSource(name="a")]}, "choose one"),
        ({"direction_weights": [1.0]}, "given without data.directions"),
    ],
)
def test_bad_directions_get_one_line(change, message):
    with pytest.raises(MTError, match=message):
        check_data(DataConfig(**change))


def test_temperature_flattens_the_directions_shares():
    sizes = np.array([100, 400])
    assert sampling_weights(DataConfig(directions=["de-en", "fr-en"]), sizes) == [1.0, 1.0]
    flat = sampling_weights(DataConfig(directions=["de-en", "fr-en"], temperature=100), sizes)
    shares = np.array(flat) * sizes / sizes.sum()  # each direction's part of an epoch
    assert shares == pytest.approx([0.5, 0.5], abs=0.01)
    given = DataConfig(directions=["de-en", "fr-en"], direction_weights=[2.0, 0.5])
    assert sampling_weights(given, sizes) == [2.0, 0.5]


def test_the_server_translates_into_the_requested_language(multilingual_run):
    run_dir, results = multilingual_run
    german = multi30k_lines("train", "de", 2)
    with serving(f"checkpoint={run_dir / results['final']}") as url:
        (model,) = http_get(url + "/models")
        assert model["tgt_langs"] == ["en", "de", "fr"]
        status, body = http_post(url + "/translate", {"sentences": german, "tgt_lang": "fr"})
        assert status == 200, body
        translator = Translator.from_checkpoint(run_dir / results["final"], "cpu")
        expected = translator.translate(german, tgt_lang="fr")
        assert [t["text"] for t in body["translations"]] == expected
        status, body = http_post(url + "/translate", {"sentences": german, "tgt_lang": "cs"})
        assert status == 422 and "tgt_lang=cs: the model was not trained" in body["error"]


def test_a_single_direction_run_gets_no_tag_and_its_old_batches(memorise_root, cache_dir):
    """Without data.directions nothing of this feature reaches the data: the ids are the
    tokenizer's own, the held-out splits carry no direction, and the epochs are the same."""
    data = make_config(memorise_root, "tiny", cache_dir).data
    corpus = load_corpus(data)
    assert corpus.tokenizer.target_languages == []
    valid = corpus.valid
    assert valid.sources is None and valid.directions == []
    plain = corpus.tokenizer.encode_src(valid.src_text)
    assert [ids.tolist() for ids in valid.src_ids] == plain
    assert epoch_weights(data, corpus.train.sources) is None


def test_dedup_keeps_an_identical_pair_of_another_direction(tmp_path, cache_dir):
    """The same text pair in de-en and de-fr (a French line that reads as the English one) is
    two examples, told apart by their tags; a pair repeated within a direction is dropped."""
    lines = {lang: multi30k_lines("train", lang, PAIRS) for lang in ("de", "en", "fr")}
    lines["fr"][0] = lines["en"][0]
    directory = tmp_path / "same"
    directory.mkdir()
    for lang, text in lines.items():
        write_lines(directory / f"train.{lang}", [*text, text[3]])
        for split in ("val", "test_2016_flickr"):
            write_lines(directory / f"{split}.{lang}", text)
    overrides = ["data.directions=[de-en,de-fr]", "data.dedup=true"]
    corpus = load_corpus(make_config(tmp_path, "same", cache_dir, *overrides).data)
    assert len(corpus.train) == 2 * PAIRS


def test_the_language_check_knows_each_language_of_the_model(multilingual_run):
    """Sources are de or en, targets en, de or fr: a file is checked against the languages of
    its side (the one asked for, for references)."""
    run_dir, results = multilingual_run
    translator = Translator.from_checkpoint(run_dir / results["final"], "cpu")
    assert sorted(translator.profiles) == ["de", "en", "fr"]
    text = {lang: multi30k_lines("test_2016_flickr", lang, 20) for lang in ("de", "en", "fr", "cs")}
    for lang, side, tgt_lang, needle in (
        ("de", "src", None, None),
        ("en", "src", None, None),
        ("fr", "tgt", "fr", None),
        ("fr", "src", None, "reads as fr text, the model's other side, not de or en"),
        ("de", "tgt", "fr", "reads as de text, the model's other side, not fr"),
        ("en", "tgt", "de", "reads as en text, the model's other side, not de"),
        ("cs", "src", None, "unlike the de or en text the model was trained on"),
    ):
        found = translator.language_warnings("input", text[lang], side, tgt_lang)
        assert found == ([] if needle is None else [found[0]]), (lang, side, found)
        assert needle is None or needle in found[0], (lang, side, found)


def test_an_export_translates_into_the_requested_language_as_the_checkpoint_does(
    multilingual_run, tmp_path
):
    """The tag is part of the source: CTranslate2 needs nothing of its own for it."""
    run_dir, results = multilingual_run
    final, out = run_dir / results["final"], tmp_path / "ct2"
    exported = run_tool("export", f"checkpoint={final}", f"out={out}", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    ours, theirs = Translator.from_checkpoint(final, "cpu"), ctranslate2_translator(out, "cpu")
    assert theirs.target_languages == ["en", "de", "fr"]
    german = multi30k_lines("train", "de", PAIRS)
    for lang in ("en", "fr"):
        assert theirs.translate(german, tgt_lang=lang) == ours.translate(german, tgt_lang=lang)
    with pytest.raises(MTError, match="tgt_lang=cs: the model was not trained to produce it"):
        theirs.translate(german, tgt_lang="cs")


def test_compare_gives_a_row_per_direction_under_the_runs_own(multilingual_run, tmp_path):
    run_dir, results = multilingual_run
    result = run_tool("compare", str(run_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [r.split(" | ") for r in result.stdout.splitlines()[2:]]
    share = {d: s["percent_in_target"] for d, s in results["test"]["directions"].items()}
    assert [r[0] for r in rows] == [
        f"| {run_dir}",
        *(f"| {run_dir} {d} ({share[d]:.1f}% in {d[-2:]})" for d in DIRECTIONS),
        f"| {run_dir} en-fr (zero-shot, {share['en-fr']:.1f}% in fr)",
    ]
    zero_shot = results["test"]["directions"]["en-fr"]
    assert rows[-1][4:7] == [f"{zero_shot[k]:.2f}" for k in ("bleu", "chrf", "bleu_lc")]
    assert rows[0][4] == f"{results['test']['bleu']:.2f}"
    # Its significance, on one direction: named, or refused in one line naming the choices.
    tested = run_tool(
        "compare", str(run_dir), "--significance", "--direction", "de-fr", cwd=tmp_path
    )
    assert tested.returncode == 0, tested.stderr
    de_fr = results["test"]["directions"]["de-fr"]["bleu"]
    assert f"| {run_dir} (baseline) | {de_fr:.2f} (" in tested.stdout
    unnamed = run_tool("compare", str(run_dir), "--significance", cwd=tmp_path)
    assert unnamed.returncode == 1
    assert unnamed.stderr.strip() == (
        f"error: {run_dir}: a multilingual run; name one of its directions "
        f"{[*DIRECTIONS, 'en-fr']} (mt.compare --direction, or a study row's direction)"
    )


def test_the_share_of_output_in_the_target_language_tells_languages_apart():
    profiles = {lang: trigram_profile(multi30k_lines("val", lang, 40)) for lang in ("en", "fr")}
    french, english = (multi30k_lines("test_2016_flickr", lang, 40) for lang in ("fr", "en"))
    assert percent_in(french, "fr", profiles) == 100.0
    assert percent_in(english, "fr", profiles) == 0.0
    assert percent_in([*french[:30], *english[:9], ""], "fr", profiles) == pytest.approx(75.0)


def evaluate_in_process(run_dir, *args: str, capsys, monkeypatch):
    checkpoint = run_dir / "checkpoints" / "final.pt"
    hyps = f"hyps={run_dir.parent / 'eval.hyp'}"
    return run_in_process(
        evaluate.main,
        f"checkpoint={checkpoint}",
        hyps,
        *args,
        capsys=capsys,
        monkeypatch=monkeypatch,
    )


def test_evaluate_warns_when_the_split_is_in_a_language_the_model_never_read(
    multilingual_run, capsys, monkeypatch, caplog
):
    run_dir, _ = multilingual_run
    warned = "test_2016_flickr.fr: named as fr text, but the model's source is de or en"
    for src_lang in ("de", "fr"):
        args = [f"src_lang={src_lang}", "tgt_lang=en"]
        caplog.clear()
        result = evaluate_in_process(run_dir, *args, capsys=capsys, monkeypatch=monkeypatch)
        assert result.returncode == 0, result.stderr
        assert (warned in caplog.text) == (src_lang == "fr"), caplog.text


@pytest.mark.parametrize(
    ("args", "direction"),
    [(["tgt_lang=de"], "en-de"), (["tgt_lang=en"], "de-en"), (["tgt_lang=fr"], "de-fr")],
)
def test_evaluate_without_src_lang_reads_a_direction_the_model_has(
    multilingual_run, capsys, monkeypatch, args, direction
):
    run_dir, _ = multilingual_run
    result = evaluate_in_process(run_dir, *args, capsys=capsys, monkeypatch=monkeypatch)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((run_dir.parent / "eval.hyp.metrics.json").read_text())
    assert metrics["direction"] == f"test.{direction}"


def test_evaluate_refuses_one_language_on_both_sides(multilingual_run, capsys, monkeypatch):
    run_dir, _ = multilingual_run
    args = ["src_lang=de", "tgt_lang=de"]
    result = evaluate_in_process(run_dir, *args, capsys=capsys, monkeypatch=monkeypatch)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "error: src_lang=de and tgt_lang=de: choose two languages"


def test_a_multilingual_run_drops_empty_sources_despite_their_tag(multilingual_root, tmp_path):
    directory = tmp_path / "multi"
    shutil.copytree(multilingual_root / "multi", directory)
    lines = (directory / "train.de").read_text(encoding="utf-8").splitlines()
    write_lines(directory / "train.de", ["", *lines[1:]])
    config = make_config(
        tmp_path, "multi", tmp_path / "cache", f"data.directions=[{','.join(DIRECTIONS)}]"
    )
    train_split = load_corpus(config.data).train
    marks = source_marks(config.data)
    empty = dropped_by(train_split, 128, None, marks)["empty"]
    # The sources of de-en and de-fr (a tag and EOS), and en-de's target.
    assert int(empty.sum()) == 3
    assert int(dropped_by(train_split, 128, None)["empty"].sum()) == 1  # the tag counted
    kept = np.concatenate(train_batches(train_split, 10**4, 128, 1, 0, src_marks=marks))
    assert not empty[kept].any() and len(kept) == len(train_split) - 3


def test_each_direction_gets_its_breakdowns_and_a_study_row_compares_one(
    multilingual_run, multilingual_root, tmp_path
):
    run_dir, _ = multilingual_run
    test = json.loads((run_dir / "results.json").read_text())["test"]
    de_en = test["directions"]["de-en"]
    # Scored on that direction's sentences alone: its hypotheses against its references.
    assert sum(bucket["sentences"] for bucket in de_en["by_length"]) == PAIRS
    hyps = (run_dir / "test.hyp.de-en").read_text().splitlines()
    refs = multi30k_lines("train", "en", PAIRS)
    filled = next(b for b in de_en["by_length"] if b["sentences"])
    chosen = [i for i, s in enumerate(multi30k_lines("train", "de", PAIRS)) if in_bucket(s, filled)]
    bleu = BLEU().corpus_score([hyps[i] for i in chosen], [[refs[i] for i in chosen]]).score
    assert filled["bleu"] == pytest.approx(bleu)
    assert sum(b["ref_words"] for b in de_en["word_f_by_frequency"]) == sum(
        len(words(r)) for r in refs
    )

    # A study row names the direction it compares: two rows of the same run agree exactly.
    runs = tmp_path / "runs"
    for name in ("multi", "again"):
        shutil.copytree(run_dir, runs / f"{name}-seed1")
    rows = [{"name": n, "directions": ["de-en"], "overrides": []} for n in ("multi", "again")]
    study = tmp_path / "directions.yaml"
    study.write_text(json.dumps({"title": "de-en", "rows": rows, "long_inputs": [2]}))
    data = str(multilingual_root)
    done = run_tool("study", str(study), "--runs", str(runs), "--data-root", data, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = (runs / "directions.md").read_text()
    line = next(x for x in report.splitlines() if x.startswith("| again |") and "±" in x)
    assert line.endswith("| 1.0000 / 1.0000 | 1.0000 / 1.0000 |")  # identical: p = 1
    joined = json.loads((runs / "multi-seed1" / "long_inputs.de-en.json").read_text())["scores"]
    assert [(e["k"], e["inputs"]) for e in joined] == [(2, PAIRS // 2)]


def all_targets(run_dir) -> Counter:
    """The words of every training target of the multilingual run, as it counted them."""
    config = json.loads((run_dir / "results.json").read_text())["config"]["data"]
    languages = [direction.split("-")[1] for direction in config["directions"]]
    return Counter(
        w for lang in languages for s in multi30k_lines("train", lang, PAIRS) for w in words(s)
    )


def test_a_studys_word_f_buckets_every_row_by_the_baselines_training_counts(
    multilingual_run, multilingual_root, tmp_path
):
    run_dir, _ = multilingual_run
    runs = tmp_path / "runs"
    shutil.copytree(run_dir, runs / "multi-seed1", ignore=shutil.ignore_patterns("*.pt"))
    # A bilingual de-en baseline: the multilingual run's de-en output, as a de-en run's.
    bilingual = shutil.copytree(run_dir, runs / "bilingual-seed1")
    results = json.loads((bilingual / "results.json").read_text())
    results["config"]["data"].update(directions=[], src_lang="de", tgt_lang="en")
    results["test"] = results["test"]["directions"]["de-en"]
    (bilingual / "results.json").write_text(json.dumps(results))
    shutil.copy(run_dir / "test.hyp.de-en", bilingual / "test.hyp.en")
    # The multilingual row's output with every third sentence's last two words dropped.
    hyps = (run_dir / "test.hyp.de-en").read_text().splitlines()
    hyps = [" ".join(h.split()[:-2]) if k % 3 == 0 else h for k, h in enumerate(hyps)]
    write_lines(runs / "multi-seed1" / "test.hyp.de-en", hyps)
    rows = [{"name": "bilingual"}, {"name": "multi", "directions": ["de-en"]}]
    study = tmp_path / "words.yaml"
    study.write_text(json.dumps({"title": "Words", "rows": rows}))
    data = str(multilingual_root)
    done = run_tool("study", str(study), "--runs", str(runs), "--data-root", data, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]

    report = (runs / "words.md").read_text().split("#### Target-word F-measure")[1]
    assert report.startswith(" (%) by the word's count in the training targets of bilingual, de-en")
    table = [line.split(" | ") for line in report.splitlines() if line.startswith("| ")][2:]
    # The baseline's training targets: the 16 English sentences once (the multilingual run
    # also counted its German and French targets).
    counts = Counter(w for line in multi30k_lines("train", "en", PAIRS) for w in words(line))
    expected = word_f_by_frequency(hyps, multi30k_lines("train", "en", PAIRS), counts)
    assert [cells[3].strip(" |") for cells in table] == [f"{100 * b['f']:.2f}" for b in expected]
    assert [cells[1] for cells in table] == [str(b["ref_words"]) for b in expected]
    own = word_f_by_frequency(hyps, multi30k_lines("train", "en", PAIRS), all_targets(run_dir))
    assert [b["ref_words"] for b in own] != [b["ref_words"] for b in expected]


def test_a_study_of_several_directions_reports_each_and_pivots_through_a_language(
    multilingual_run, multilingual_root, tmp_path
):
    run_dir, _ = multilingual_run
    runs, data = tmp_path / "runs", str(multilingual_root)
    for name in ("multi", "en_de", "de_fr"):
        shutil.copytree(run_dir, runs / f"{name}-seed1")
    rows = [
        {"name": "multi", "label": "zero-shot", "directions": ["en-fr"]},
        {"name": "en_de", "directions": ["en-de"]},
        {"name": "de_fr", "directions": ["de-fr"]},
        {"name": "pivot", "label": "through de", "pivot": ["en_de", "de_fr"]},
    ]
    study = tmp_path / "pivots.yaml"
    study.write_text(json.dumps({"title": "Pivots", "rows": rows}))
    readme = tmp_path / "README.md"
    readme.write_text("<!-- study table: pivots -->\n<!-- end of study table: pivots -->\n")
    args = ["--runs", str(runs), "--data-root", data, "--table", str(readme)]
    done = run_tool("study", str(study), *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]

    # The pivot run: en->de, then de->fr by the legs' models, scored on en-fr's test set.
    translator = Translator.from_checkpoint(run_dir / "checkpoints" / "final.pt", "cpu")
    german = translator.translate(multi30k_lines("train", "en", PAIRS), tgt_lang="de")
    french = translator.translate(german, tgt_lang="fr")
    pivot = runs / "pivot-seed1"
    assert (pivot / "test.hyp.fr").read_text().splitlines() == french
    results = json.loads((pivot / "results.json").read_text())
    bleu = BLEU().corpus_score(french, [multi30k_lines("train", "fr", PAIRS)]).score
    assert results["test"]["bleu"] == pytest.approx(bleu)
    assert sum(b["sentences"] for b in results["test"]["by_length"]) == PAIRS

    # One section per test set, in order of first appearance; the pivot is tested against
    # the zero-shot row, the first of its section.
    report = (runs / "pivots.md").read_text()
    titles = [line for line in report.splitlines() if line.startswith("### ")]
    assert titles == ["### Pivots: en→fr", "### Pivots: en→de", "### Pivots: de→fr"]
    en_fr = report.split("### Pivots: en→de")[0]
    line = next(x for x in en_fr.splitlines() if x.startswith("| through de |") and " / " in x)
    p_values = [float(p) for cell in line.strip("| ").split(" | ")[-2:] for p in cell.split("/")]
    assert max(p_values) < 0.01  # the memorised legs against zero-shot output
    zero_shot = json.loads((runs / "multi-seed1" / "results.json").read_text())["test"]
    percent = zero_shot["directions"]["en-fr"]["percent_in_target"]
    assert "| % in target language |" in en_fr and f"| {percent:.2f} |" in en_fr
    table = readme.read_text()
    assert table.count("**Pivots: ") == 3 and "| zero-shot | 1 |" in table

    # mt.compare reads the study's runs, the pivot's results among them.
    compared = run_tool("compare", str(runs), cwd=tmp_path)
    assert compared.returncode == 0, compared.stderr
    assert f"| {pivot} | transformer → transformer |" in compared.stdout

    # A leg trained again: the pivot made from the earlier legs is made again, not kept.
    leg = runs / "en_de-seed1" / "results.json"
    leg.write_text(leg.read_text() + " ")
    again = run_tool("study", str(study), *args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"{pivot / 'results.json'}: made from other runs than these" in again.stdout
    made = json.loads((pivot / "results.json").read_text())["made_from"]
    assert made[0] == {"run": "en_de-seed1", "results_sha256": sha256_file(leg)}

    # A chain whose languages do not meet is refused in one line.
    rows[3]["pivot"] = ["de_fr", "en_de"]
    study.write_text(json.dumps({"title": "Pivots", "rows": rows}))
    shutil.rmtree(pivot)
    bad = run_tool("study", str(study), *args, cwd=tmp_path)
    assert bad.returncode == 1 and "do not chain" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def in_bucket(source: str, bucket: dict) -> bool:
    low, _, high = bucket["words"].rstrip("+").partition("-")
    count = len(source.split())
    return int(low) <= count and (not high or count <= int(high))
