"""Sequence-level distillation (mt.distill): a memorising teacher's translations become a
corpus that a student learns to reproduce; a killed distillation resumes into the same
corpus; a finished one is not redone."""

from __future__ import annotations

import gzip
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import assert_clean_failure, make_config, multi30k_lines, write_lines

from mt.common.errors import MTError
from mt.common.files import TEMPORARY, sha256_file
from mt.config.schema import DecodeOverrides
from mt.config.tools import DistillConfig
from mt.decoding.translator import Translator
from mt.training.distillation import distill as distill_corpus
from mt.training.trainer import train

SOURCES = multi30k_lines("train", "de", 30)


def distill(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mt.distill", *args], cwd=cwd, capture_output=True, text=True
    )


def corpus(directory: Path) -> tuple[list[str], list[str]]:
    return tuple(
        gzip.open(directory / f"train.{lang}.gz", "rt", encoding="utf-8").read().splitlines()
        for lang in ("de", "en")
    )


def test_a_student_of_a_memorising_teacher_translates_as_it_does(
    memorised_run, memorise_root, cache_dir, tmp_path
):
    teacher = memorised_run[0] / "checkpoints" / "final.pt"
    result = distill(f"checkpoint={teacher}", f"out={tmp_path / 'kd'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    sources, targets = corpus(tmp_path / "kd")
    teacher_says = [
        n[0][0] for n in Translator.from_checkpoint(teacher, "cpu").translate_nbest(SOURCES)
    ]
    assert sources == SOURCES and targets == teacher_says
    # The student learns the teacher's outputs, not the references.
    kd = [f"data.train_sources=[{{name: kd, root: {tmp_path}}}]"]
    student_run = tmp_path / "student"
    overrides = ["trainer.max_steps=150", "trainer.valid_every=150", *kd]
    train(make_config(memorise_root, "tiny", cache_dir, *overrides), student_run)
    student = Translator.from_checkpoint(student_run / "checkpoints" / "final.pt", "cpu")
    assert [n[0][0] for n in student.translate_nbest(SOURCES)] == teacher_says
    # A directory of the user's own is never written into.
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "train.en.gz").write_bytes(b"keep")
    refused = distill(f"checkpoint={teacher}", f"out={tmp_path / 'mine'}", cwd=tmp_path)
    assert refused.returncode != 0 and "holds other files" in refused.stderr
    assert (tmp_path / "mine" / "train.en.gz").read_bytes() == b"keep"
    # Run again: nothing is redone.
    again = distill(f"checkpoint={teacher}", f"out={tmp_path / 'kd'}", cwd=tmp_path)
    assert again.returncode == 0 and "already distilled" in again.stderr


def written_shards(out: Path) -> int:
    """Shards on disk whole: not a temporary one a writer has open (.tmp-PID@HOST~NNNNNN.en)."""
    return sum(not p.name.startswith(TEMPORARY) for p in (out / "shards").glob("*.en"))


def test_a_killed_distillation_resumes_into_the_same_corpus(memorised_run, tmp_path, capsys):
    teacher = memorised_run[0] / "checkpoints" / "final.pt"
    lines = write_lines(tmp_path / "in.de", SOURCES * 8)  # 240 lines, 24 shards of 10

    def settings(out: Path) -> DistillConfig:
        return DistillConfig(
            checkpoint=str(teacher),
            out=str(out),
            input=str(lines),
            shard_lines=10,
            device="cpu",
            decode=DecodeOverrides(beam_size=2),
        )

    distill_corpus(settings(tmp_path / "whole"))
    out = tmp_path / "killed"
    args = [f"checkpoint={teacher}", f"input={lines}", "shard_lines=10", "decode.beam_size=2"]
    process = subprocess.Popen(
        [sys.executable, "-m", "mt.distill", *args, "device=cpu", f"out={out}"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while written_shards(out) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    shards = written_shards(out)
    assert 3 <= shards < 24 and not (out / "distill.json").exists()
    capsys.readouterr()
    finished = distill_corpus(settings(out))
    # Only the missing shards were decoded, into the corpus an uninterrupted run made.
    assert capsys.readouterr().err.count("shard ") == 24 - shards
    assert corpus(out) == corpus(tmp_path / "whole")
    assert finished["pairs"] == 240 and finished["shards"] == 24


def test_a_distillation_begun_with_one_teacher_is_never_finished_with_another(
    memorised_run, tmp_path
):
    checkpoints = memorised_run[0] / "checkpoints"
    teacher, other = checkpoints / "final.pt", checkpoints / "last.pt"
    assert sha256_file(teacher) != sha256_file(other)
    lines = write_lines(tmp_path / "in.de", SOURCES * 2)  # 60 lines, 6 shards of 10

    def settings(out: Path, **changes) -> DistillConfig:
        given = {"checkpoint": str(teacher), "input": str(lines), "shard_lines": 10}
        return DistillConfig(out=str(out), device="cpu", **{**given, **changes})

    whole = tmp_path / "whole"
    distill_corpus(settings(whole))
    # As a kill leaves it: the record and three of the six shards, no corpus.
    killed = tmp_path / "killed"
    shutil.copytree(whole, killed, ignore=shutil.ignore_patterns("distill.json", "train.*"))
    for index in (3, 4, 5):
        (killed / "shards" / f"00000{index}.en").unlink()
    changed = write_lines(tmp_path / "changed.de", SOURCES[::-1] * 2)
    for changes in (
        {"checkpoint": str(other)},
        {"decode": DecodeOverrides(beam_size=1)},
        {"input": str(changed)},
        {"shard_lines": 20},
    ):
        with pytest.raises(MTError, match=f"out={killed}: its shards were made by another"):
            distill_corpus(settings(killed, **changes))
    assert not (killed / "distill.json").exists()
    # A damaged shard is named, not assembled into a corpus out of step.
    damaged = killed / "shards" / "000001.en"
    damaged.write_text("".join(damaged.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(MTError, match=f"{damaged}: 9 lines for 10 sources"):
        distill_corpus(settings(killed))
    damaged.unlink()  # decoded again: the corpus the uninterrupted run made
    distill_corpus(settings(killed))
    assert corpus(killed) == corpus(whole)
    # On the command line: one line; a teacher that is not there is named as missing.
    other_teacher = distill(
        f"checkpoint={other}", f"input={lines}", "shard_lines=10", f"out={killed}", cwd=tmp_path
    )
    assert_clean_failure(other_teacher, f"error: out={killed}: distilled by another teacher")
    gone = tmp_path / "gone.pt"
    missing = distill(
        f"checkpoint={gone}", f"input={lines}", f"out={tmp_path / 'new'}", cwd=tmp_path
    )
    assert_clean_failure(missing, f"error: {gone}: checkpoint not found")
    assert len(missing.stderr.strip().splitlines()) == 1
