"""Starting a run from a trained model (trainer.init_from): the parent's weights, shape and
subword models arrive unchanged, the schedule restarts unless kept, refusals name what is
wrong, and the parent's files are never written to."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import MULTI30K, assert_clean_failure, make_config, multi30k_lines, run_train, scalars

from mt.common.checkpoint import load_checkpoint
from mt.common.errors import MTError
from mt.common.files import sha256_file
from mt.decoding.translator import load_trained
from mt.evaluation.comparison import markdown_table, row
from mt.training.rundir import refuse_parents_directory
from mt.training.trainer import Trainer, train
from mt.training.validation import split_loss

SHORT = ["decode.beam_size=1", "decode.max_len_a=0", "decode.max_len_b=3"]


@pytest.fixture
def parent(memorised_run) -> Path:
    """A tiny Transformer's run directory, trained for 150 steps until it knows its pairs."""
    return memorised_run[0]


def digests(directory: Path) -> dict[str, str]:
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def test_a_child_on_other_data_starts_with_the_parents_weights_and_pieces(
    parent, small_root, cache_dir, tmp_path
):
    """Other text (300 pairs) and another vocabulary size asked for: the parent's subword
    models encode it all the same, and its weights evaluate as the parent does."""
    payload = load_checkpoint(parent / "checkpoints" / "final.pt")
    overrides = [f"trainer.init_from={parent}", "data.vocab_size=120"]
    trainer = Trainer(make_config(small_root, "small", cache_dir, *overrides), tmp_path)
    assert trainer.corpus.tokenizer.to_dict() == payload["tokenizer"]
    src, _ = trainer.corpus.train.pair_ids(np.arange(5))
    expected = trainer.corpus.tokenizer.encode_src(multi30k_lines("train", "de", 5))
    assert [ids.tolist() for ids in src] == expected
    child_weights = trainer.model.state_dict()
    assert all(torch.equal(child_weights[k], v) for k, v in payload["model"].items())
    parent_model, _, _ = load_trained(parent / "checkpoints" / "final.pt")
    valid, device = trainer.corpus.valid, torch.device("cpu")
    assert split_loss(trainer.model, valid, 512, device) == split_loss(
        parent_model, valid, 512, device
    )


def test_a_child_is_never_written_into_its_parents_directory(parent, memorise_root, tmp_path):
    before = digests(parent)
    for init_from in (parent, parent / "checkpoints" / "final.pt"):
        result = run_train(
            "data.name=tiny",
            f"data.root={memorise_root}",
            f"trainer.init_from={init_from}",
            "trainer.overwrite=true",
            f"hydra.run.dir={parent}",
            cwd=tmp_path,
        )
        assert_clean_failure(result, "a child run never writes into its parent's directory")
    assert digests(parent) == before
    # Beside the parent, or in the folder above it, a child writes nothing of the parent's.
    for beside in (parent.parent, parent.parent / "child"):
        refuse_parents_directory(beside, str(parent / "checkpoints" / "final.pt"))


def test_a_child_run_restarts_the_schedule_records_its_parent_and_leaves_it_alone(
    parent, memorise_root, cache_dir, tmp_path
):
    before = digests(parent)
    common = ["trainer.max_steps=3", "trainer.valid_every=3", *SHORT]
    child = tmp_path / "child"
    results = train(
        make_config(memorise_root, "tiny", cache_dir, f"trainer.init_from={parent}", *common),
        child,
    )
    fresh = tmp_path / "fresh"
    train(make_config(memorise_root, "tiny", cache_dir, *common), fresh)
    assert digests(parent) == before
    final = parent / "checkpoints" / "final.pt"
    parent_commit = load_checkpoint(final)["progress"]["commits"][-1]
    expected = {"path": str(final.resolve()), "sha256": sha256_file(final), "commit": parent_commit}
    assert results["parent"] == expected
    assert scalars(child, "train/lr") == scalars(fresh, "train/lr")  # warm-up from step 1 again
    # Its first loss is the trained parent's, far below a fresh model's.
    assert scalars(child, "train/loss")[1] < 0.5 * scalars(fresh, "train/loss")[1]
    table = markdown_table([row(child / "results.json"), row(fresh / "results.json")])
    assert "started from" in table and f"{parent.name}/final.pt ({expected['sha256'][:8]})" in table


def test_kept_moments_and_schedule_are_the_parents_and_otherwise_start_afresh(
    parent, memorise_root, cache_dir, tmp_path
):
    saved = load_checkpoint(parent / "checkpoints" / "last.pt")  # final.pt keeps weights only
    start = [f"trainer.init_from={parent}"]
    keep = [*start, "trainer.init_keep=[optimizer,schedule]"]
    kept = Trainer(make_config(memorise_root, "tiny", cache_dir, *keep), tmp_path / "kept")
    fresh = Trainer(make_config(memorise_root, "tiny", cache_dir, *start), tmp_path / "fresh")
    moments = kept.state.optimizer.state_dict()["state"]
    assert moments.keys() == saved["optimizer"]["state"].keys()
    for k, state in saved["optimizer"]["state"].items():
        assert torch.equal(moments[k]["exp_avg_sq"], state["exp_avg_sq"])
    assert kept.state.scheduler.last_epoch == saved["scheduler"]["last_epoch"] == 150
    assert fresh.state.optimizer.state_dict()["state"] == {}
    assert fresh.state.scheduler.last_epoch == 0
    assert kept.progress.step == fresh.progress.step == 0  # a new run either way


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.d_model=32"], "model.d_model=32 contradicts trainer.init_from="),
        (["trainer.resume=true"], "trainer.resume=true continues this run"),
        (["trainer.init_keep=[moments]"], "trainer.init_keep: 'moments' is not one of"),
    ],
    ids=["contradicting-shape", "with-resume", "unknown-keep"],
)
def test_refusals_name_the_key(parent, memorise_root, cache_dir, tmp_path, overrides, message):
    with pytest.raises(MTError, match=message):
        config = make_config(
            memorise_root, "tiny", cache_dir, f"trainer.init_from={parent}", *overrides
        )
        Trainer(config, tmp_path)


def test_data_in_languages_the_parents_pieces_were_not_made_for_is_refused(
    parent, cache_dir, tmp_path
):
    overrides = [f"trainer.init_from={parent}", "data.src_lang=fr"]
    config = make_config(MULTI30K.parent, "multi30k", cache_dir, *overrides)
    with pytest.raises(MTError, match=r"data: fr is not among the languages of trainer.init_from"):
        Trainer(config, tmp_path)


def test_an_rnn_parent_for_a_transformer_run_is_refused(memorise_root, cache_dir, tmp_path):
    rnn = tmp_path / "rnn"
    overrides = ["trainer.max_steps=1", "trainer.valid_every=1", *SHORT]
    train(make_config(memorise_root, "tiny", cache_dir, *overrides, experiment="rnn"), rnn)
    config = make_config(memorise_root, "tiny", cache_dir, f"trainer.init_from={rnn}")
    with pytest.raises(MTError, match="a rnn checkpoint, and this run's model is transformer"):
        Trainer(config, tmp_path / "child")


def test_a_child_resumes_with_its_parents_pieces_and_keeps_its_parent_on_record(
    parent, small_root, cache_dir, tmp_path
):
    """Resumed without init_from, on other data: the pieces and the record come from the
    child's own last.pt, not from a tokenizer trained anew."""
    common = ["trainer.valid_every=2", *SHORT]
    child = tmp_path / "child"
    start = [f"trainer.init_from={parent}", "trainer.max_steps=2", *common]
    first = train(make_config(small_root, "small", cache_dir, *start), child)
    resume = ["trainer.resume=true", "trainer.max_steps=4", *common]
    resumed = train(make_config(small_root, "small", cache_dir, *resume), child)
    assert resumed["steps"] == 4 and resumed["parent"] == first["parent"]
    # Its config keeps the init_from it started with, as its config.yaml does.
    assert resumed["config"]["trainer"]["init_from"] == str(parent)
    assert first["parent"]["path"] == str((parent / "checkpoints" / "final.pt").resolve())


def test_freezing_every_part_is_refused_in_one_line(parent, memorise_root, cache_dir, tmp_path):
    freeze_all = "trainer.freeze=[embeddings,encoder,decoder]"
    config = make_config(
        memorise_root, "tiny", cache_dir, f"trainer.init_from={parent}", freeze_all
    )
    with pytest.raises(MTError, match=r"trainer.freeze=\[.*\]: leaves nothing of the model"):
        Trainer(config, tmp_path / "child")
