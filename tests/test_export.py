"""mt.export to CTranslate2, and decoding with the export: the same network, the same search."""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import ctranslate2
import pytest
import torch
from helpers import (
    REPO,
    assert_clean_failure,
    make_config,
    multi30k_lines,
    run_in_process,
    run_tool,
    write_lines,
)
from sacrebleu.metrics import BLEU

from mt import translate
from mt.common.checkpoint import save_checkpoint
from mt.common.special_ids import BOS_ID, EOS_ID
from mt.config.schema import DecodeConfig
from mt.config.store import to_plain_dict
from mt.data.corpus import load_corpus
from mt.decoding.translator import Translator
from mt.deploy.engine import ctranslate2_translator
from mt.models import build_model


def random_checkpoint(root, cache, path, *overrides: str, experiment: str = "transformer"):
    """An untrained model whose every weight, LayerNorms included, is pushed off its initial
    value, so that a weight exported to the wrong place changes the scores."""
    config = make_config(root, "small", cache, *overrides, experiment=experiment)
    tokenizer = load_corpus(config.data).tokenizer
    torch.manual_seed(0)
    model = build_model(config.model, *tokenizer.sizes())
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    payload = {"config": to_plain_dict(config), "tokenizer": tokenizer.to_dict()}
    save_checkpoint({**payload, "model": model.state_dict()}, path)
    return model.eval(), tokenizer


def export(checkpoint, out, *args: str, cwd) -> subprocess.CompletedProcess:
    return run_tool("export", f"checkpoint={checkpoint}", f"out={out}", *args, cwd=cwd)


@pytest.mark.parametrize(
    "overrides",
    [
        [],  # pre-norm, joint vocabulary, tied embeddings and output projection
        ["model.pre_norm=false", "data.joint_vocab=false", "model.tie_embeddings=false"],
    ],
    ids=["pre-norm-tied", "post-norm-separate-vocabularies"],
)
def test_exported_network_gives_every_target_token_our_log_probability(
    small_root, cache_dir, tmp_path, overrides
):
    model, tokenizer = random_checkpoint(small_root, cache_dir, tmp_path / "m.pt", *overrides)
    assert export(tmp_path / "m.pt", tmp_path / "ct2", cwd=tmp_path).returncode == 0
    src = tokenizer.encode_src(multi30k_lines("val", "de", 8))
    tgt = tokenizer.encode_tgt(multi30k_lines("val", "en", 8))
    scored = ctranslate2.Translator(str(tmp_path / "ct2")).score_batch(
        [[tokenizer.src.id_to_piece(i) for i in row] for row in src],
        [[tokenizer.tgt.id_to_piece(i) for i in row] for row in tgt],
    )
    for s, t, result in zip(src, tgt, scored, strict=True):
        with torch.no_grad():
            logits = model(torch.tensor([s]), torch.tensor([[BOS_ID, *t]]))[0]
        ours = torch.log_softmax(logits, dim=-1)[torch.arange(len(t) + 1), [*t, EOS_ID]]
        torch.testing.assert_close(torch.tensor(result.log_probs), ours, atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    "decode",
    [
        DecodeConfig(beam_size=1),
        DecodeConfig(beam_size=3, nbest=3),
        DecodeConfig(beam_size=4, nbest=2, length_penalty=0.0),
        DecodeConfig(beam_size=5, length_penalty=2.0),
    ],
    ids=["greedy", "beam3-nbest3", "beam4-no-penalty", "beam5-penalty2"],
)
def test_ctranslate2_finds_the_hypotheses_our_search_finds(moved_checkpoint, exported, decode):
    sentences = multi30k_lines("train", "de", 30)
    ours = Translator.from_checkpoint(moved_checkpoint, "cpu").translate_nbest(sentences, decode)
    theirs = ctranslate2_translator(exported, "cpu").translate_nbest(sentences, decode)
    # The best hypotheses are the same. Past the first, CTranslate2 stops once it has nbest
    # finished hypotheses, while ours goes on while a live beam could still enter the n-best:
    # a lower entry may differ, and then ours scores at least as well.
    assert [n[0][0] for n in theirs] == [n[0][0] for n in ours]
    differing = 0
    for a, b in zip(theirs, ours, strict=True):
        if [text for text, _ in a] != [text for text, _ in b]:
            differing += 1
            assert all(
                ours_k >= theirs_k - 1e-3 for (_, theirs_k), (_, ours_k) in zip(a, b, strict=True)
            )
            continue
        # CTranslate2's CPU log-softmax gives confident tokens up to ~4e-5 more log-probability
        # than torch's: scores agree to 1e-3 relative, not to float precision.
        assert [score for _, score in a] == pytest.approx([score for _, score in b], rel=1e-3)
    assert differing <= len(sentences) // 10


def test_loading_ctranslate2_leaves_torchs_threads_alone(exported):
    # CTranslate2 sets OpenMP's thread count for the whole process; a second model then took
    # its workers from torch's count, one, and decoded at 0.6x the speed of the first.
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        first = ctranslate2_translator(exported, "cpu")
        assert torch.get_num_threads() == 2
        second = ctranslate2_translator(exported, "cpu")
        assert (
            second.engine.translator.num_translators == 2 == first.engine.translator.num_translators
        )
    finally:
        torch.set_num_threads(before)


def test_ctranslate2_samples_as_asked(exported):
    sentences = multi30k_lines("train", "de", 10)
    translator = ctranslate2_translator(exported, "cpu")
    greedy = translator.translate(sentences, DecodeConfig(beam_size=1))
    top_1 = DecodeConfig(sampling=True, top_k=1, nbest=2, temperature=2.0)
    for texts, best in zip(translator.translate_nbest(sentences, top_1), greedy, strict=True):
        assert [text for text, _ in texts] == [best, best]
    warm = DecodeConfig(sampling=True, nbest=3, temperature=2.0, top_p=0.9, seed=5)
    once = translator.translate_nbest(sentences, warm)
    assert translator.translate_nbest(sentences, warm) == once
    assert translator.translate_nbest(sentences, replace(warm, seed=6)) != once
    assert all(len(samples) == 3 for samples in once)


@pytest.mark.parametrize("beam_size", [1, 4])
def test_ctranslate2_continues_after_the_prefix_as_ours_does(moved_checkpoint, exported, beam_size):
    # Memorised sentences, so that no output runs into the length limit, where the engines
    # differ (an EOS forced in ours, none in CTranslate2; mt/deploy/engine.py).
    sentences = multi30k_lines("train", "de", 8)
    prefixes = [" ".join(ref.split()[:3]) for ref in multi30k_lines("train", "en", 8)]
    prefixes[3] = ""
    prefixes[5] = "Someone"  # not the memorised start: the model must go on from there
    decode = DecodeConfig(beam_size=beam_size, max_len_a=2.0)
    theirs = ctranslate2_translator(exported, "cpu").translate(sentences, decode, prefixes=prefixes)
    ours = Translator.from_checkpoint(moved_checkpoint, "cpu").translate(
        sentences, decode, prefixes=prefixes
    )
    assert all(text.startswith(prefix) for text, prefix in zip(theirs, prefixes, strict=True))
    plain = ctranslate2_translator(exported, "cpu").translate(sentences, decode)
    assert theirs[3] == plain[3]  # no prefix, no change
    if beam_size == 1:
        assert theirs == ours
    # With beam > 1 the engines may part after a prefix: CTranslate2's scores leave the
    # prefix's log-probability out, so its length penalty weighs the hypotheses otherwise.


def test_an_export_decodes_with_the_checkpoints_own_settings(chosen_run, tmp_path):
    run_dir, results = chosen_run
    result = export(run_dir / results["final"], tmp_path / "ct2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    decode = ctranslate2_translator(tmp_path / "ct2", "cpu").config.decode
    assert decode.length_penalty == results["selection"]["length_penalty"]
    assert (decode.beam_size, decode.max_len_a, decode.max_len_b) == (2, 1.0, 5)


def test_translate_and_evaluate_with_either_engine_agree(moved_checkpoint, exported, tmp_path):
    src = write_lines(tmp_path / "in.de", [*multi30k_lines("train", "de", 10), ""])
    ref = write_lines(tmp_path / "ref.en", [*multi30k_lines("train", "en", 10), ""])
    outputs = {}
    for engine, model in (
        ("torch", f"checkpoint={moved_checkpoint}"),
        ("ctranslate2", f"model_dir={exported}"),
    ):
        out = tmp_path / f"{engine}.en"
        result = run_tool(
            "translate", f"engine={engine}", model, f"input={src}", f"output={out}", cwd=tmp_path
        )
        assert result.returncode == 0, result.stderr
        outputs[engine] = out.read_text(encoding="utf-8")
        result = run_tool(
            "evaluate",
            f"engine={engine}",
            model,
            f"src={src}",
            f"ref={ref}",
            f"hyps={tmp_path / engine}.hyp",
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        outputs[engine + " bleu"] = result.stdout.splitlines()[0]
    assert outputs["ctranslate2"] == outputs["torch"]
    assert len(outputs["torch"].splitlines()) == 11
    assert outputs["ctranslate2 bleu"] == outputs["torch bleu"]


def test_int8_export_is_smaller_and_translates_nearly_alike(moved_checkpoint, exported, tmp_path):
    result = export(moved_checkpoint, tmp_path / "int8", "quantization=int8", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    size = (tmp_path / "int8" / "model.bin").stat().st_size
    assert size < 0.5 * (exported / "model.bin").stat().st_size
    sentences = multi30k_lines("train", "de", 30)
    float32 = ctranslate2_translator(exported, "cpu").translate(sentences)
    int8 = ctranslate2_translator(tmp_path / "int8", "cpu").translate(sentences)
    # int8 rounding moves a few tokens, how many depends on the CPU's int8 kernels (6 of 30
    # sentences on one machine, 9 on another, 2026-12-07): the outputs stay close to
    # float32's (86 BLEU against them there), and to the references the model memorised.
    assert BLEU().corpus_score(int8, [float32]).score >= 70
    assert BLEU().corpus_score(int8, [multi30k_lines("train", "en", 30)]).score >= 70


def test_export_never_replaces_an_existing_directory_unasked(moved_checkpoint, exported, tmp_path):
    precious = tmp_path / "ct2"
    precious.mkdir()
    (precious / "notes.txt").write_text("mine")
    assert_clean_failure(export(moved_checkpoint, precious, cwd=tmp_path), "already exists")
    # overwrite=true replaces an earlier export, never a directory of something else.
    refused = export(moved_checkpoint, precious, "overwrite=true", cwd=tmp_path)
    assert_clean_failure(refused, "is not a directory mt.export wrote")
    assert [p.name for p in precious.iterdir()] == ["notes.txt"]
    earlier = tmp_path / "earlier"
    shutil.copytree(exported, earlier)
    (earlier / "model.bin").write_bytes(b"an older export")
    result = export(moved_checkpoint, earlier, "overwrite=true", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (earlier / "model.bin").read_bytes() == (exported / "model.bin").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct2", "earlier"]  # no temporaries


@pytest.mark.parametrize("where", ["the checkpoint", "its directory"])
def test_export_never_writes_over_or_around_its_checkpoint(moved_checkpoint, tmp_path, where):
    home = tmp_path / "home"
    home.mkdir()
    checkpoint = Path(shutil.copy(moved_checkpoint, home / "model.pt"))
    (home / "notes.txt").write_text("mine")
    before = checkpoint.read_bytes()
    out = checkpoint if where == "the checkpoint" else home
    result = export(checkpoint, out, "overwrite=true", cwd=tmp_path)
    assert_clean_failure(result, f"out={out} would replace the checkpoint {checkpoint}")
    assert checkpoint.read_bytes() == before and (home / "notes.txt").read_text() == "mine"


def test_a_killed_exports_staging_is_removed_by_the_next(moved_checkpoint, tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = tmp_path / f".tmp-{gone.pid}@{socket.gethostname()}~ct2"
    stale.mkdir()
    (stale / "model.bin").write_bytes(b"half an export")
    result = export(moved_checkpoint, tmp_path / "other", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not stale.exists()


def test_exporting_an_rnn_fails_in_one_line(small_root, cache_dir, tmp_path):
    random_checkpoint(small_root, cache_dir, tmp_path / "m.pt", experiment="rnn")
    result = export(tmp_path / "m.pt", tmp_path / "ct2", cwd=tmp_path)
    assert_clean_failure(result, "'rnn', an architecture CTranslate2 does not have")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "ct2").exists()


def test_without_ctranslate2_the_error_says_which_extra_to_install(exported, tmp_path):
    # `python -m mt.translate` in a Python where `import ctranslate2` fails.
    hide = "import runpy, sys; sys.modules['ctranslate2'] = None; "
    run = "runpy.run_module('mt.translate', run_name='__main__', alter_sys=True)"
    result = subprocess.run(
        [sys.executable, "-c", hide + run, "engine=ctranslate2", f"model_dir={exported}"],
        input="Hallo\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    deploy = [r for r in importlib.metadata.requires("mt-toolkit") if 'extra == "deploy"' in r]
    ctranslate2_requirement = deploy[0].partition(";")[0].strip()  # ctranslate2>=4.5
    assert_clean_failure(
        result,
        f'the deploy extra (ctranslate2 is missing): pip install "{ctranslate2_requirement}"',
    )


@pytest.mark.parametrize("damaged", ["model.bin", "source.spm"])
def test_a_damaged_export_is_refused_in_one_line(exported, tmp_path, damaged, capsys, monkeypatch):
    """4 KB of random bytes inside a file: CTranslate2 itself would load the model and
    translate every line differently, saying nothing."""
    copy = shutil.copytree(exported, tmp_path / "ct2")
    noise = torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0))
    with open(copy / damaged, "r+b") as f:
        f.seek((copy / damaged).stat().st_size // 2 - 2048)
        f.write(noise.to(torch.uint8).numpy().tobytes())
    source = write_lines(tmp_path / "in.de", multi30k_lines("train", "de", 3))
    args = ["engine=ctranslate2", f"model_dir={copy}", f"input={source}", "output=out.en"]
    monkeypatch.chdir(tmp_path)
    for expected in ("damaged", "missing from the export"):
        result = run_in_process(translate.main, *args, capsys=capsys, monkeypatch=monkeypatch)
        assert_clean_failure(result, f"error: {copy / damaged}: {expected}")
        assert result.stderr.count("\n") == 1 and not (tmp_path / "out.en").exists()
        (copy / damaged).unlink(missing_ok=True)  # then the same with the file gone
    # An export whose metadata lost its digest table is refused, not decoded unchecked.
    metadata = json.loads((copy / "mt.json").read_text())
    del metadata["sha256"][damaged]
    (copy / "mt.json").write_text(json.dumps(metadata))
    result = run_in_process(translate.main, *args, capsys=capsys, monkeypatch=monkeypatch)
    assert_clean_failure(result, f"error: {copy / 'mt.json'}: no sha256 of {damaged}")


def test_the_decoding_speed_script_times_a_checkpoint_an_ensemble_and_an_export(
    moved_checkpoint, exported, memorise_root, tmp_path
):
    out = tmp_path / "speed.json"
    models = [f"one={moved_checkpoint}", f"two={moved_checkpoint}+{moved_checkpoint}"]
    command = [
        sys.executable,
        str(REPO / "scripts" / "decode_speed.py"),
        *models,
        f"ct2={exported}",
    ]
    command += ["--data-root", str(memorise_root), "--repeats", "1", "--json", str(out)]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert [(r["model"], r["engine"]) for r in report["rows"]] == [
        ("one", "torch"),
        ("two", "torch"),
        ("ct2", "ctranslate2"),
    ]
    assert report["sentences"] == 30 and all(r["sentences_per_s"] > 0 for r in report["rows"])
    # An ensemble of a model with itself is that model; the export decodes as it does.
    bleu = {r["model"]: r["bleu"] for r in report["rows"]}
    assert bleu["two"] == bleu["one"] and abs(bleu["ct2"] - bleu["one"]) < 1
