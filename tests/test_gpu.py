"""On a CUDA device: training agrees with the CPU, resumes exactly, decodes as the CPU does, and
a training step never waits for the device. `pytest -m gpu` (skipped without CUDA; left out
of the default run, which is CPU-only)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import make_config, multi30k_lines, scalars, update_losses

from mt.config.schema import DecodeConfig
from mt.data.batches import make_batch, train_batches
from mt.decoding.translator import Translator
from mt.training.trainer import Trainer, train

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
SHORT = ["decode.beam_size=1", "decode.max_len_a=0", "decode.max_len_b=3"]
# The GPU step runs in bf16 (8 significant bits) and the CPU's in fp32: a few updates of the
# tiny model stay within 2% of each other's per-token loss.
CPU_GPU_TOLERANCE = 0.02


def step_losses(root, cache, run_dir, device: str) -> list[float]:
    return update_losses(root, cache, run_dir, 5, f"trainer.device={device}")


def test_gpu_losses_agree_with_the_cpu(memorise_root, cache_dir, tmp_path):
    cpu = step_losses(memorise_root, cache_dir, tmp_path / "cpu", "cpu")
    gpu = step_losses(memorise_root, cache_dir, tmp_path / "gpu", "cuda")
    assert np.allclose(gpu, cpu, rtol=CPU_GPU_TOLERANCE, atol=0)


def test_resume_on_the_gpu_continues_with_the_same_losses(memorise_root, cache_dir, tmp_path):
    common = ["trainer.device=cuda", "model.dropout=0.3", "trainer.valid_every=3", *SHORT]
    train(
        make_config(memorise_root, "tiny", cache_dir, "trainer.max_steps=6", *common),
        tmp_path / "a",
    )
    interrupted = tmp_path / "b"
    train(
        make_config(memorise_root, "tiny", cache_dir, "trainer.max_steps=3", *common), interrupted
    )
    resumed = ["trainer.max_steps=6", "trainer.resume=true", *common]
    train(make_config(memorise_root, "tiny", cache_dir, *resumed), interrupted)
    assert scalars(interrupted, "train/loss") == scalars(tmp_path / "a", "train/loss")


@pytest.mark.parametrize("beam", [1, 4])
def test_gpu_decoding_equals_cpu_decoding(moved_checkpoint, beam):
    sentences = multi30k_lines("train", "de", 30)
    decode = DecodeConfig(beam_size=beam)
    cpu = Translator.from_checkpoint(moved_checkpoint, "cpu").translate_nbest(sentences, decode)
    gpu = Translator.from_checkpoint(moved_checkpoint, "cuda").translate_nbest(sentences, decode)
    assert [n[0][0] for n in gpu] == [n[0][0] for n in cpu]


def test_a_training_step_never_waits_for_the_device(memorise_root, cache_dir, tmp_path):
    config = make_config(memorise_root, "tiny", cache_dir, "trainer.device=cuda")
    trainer = Trainer(config, tmp_path)
    train_split, data = trainer.corpus.train, config.data
    fixed = trainer.progress.fixed_shapes
    batches = train_batches(train_split, data.max_tokens, data.max_len, 1, 0, fixed_shapes=fixed)
    updates = [[make_batch(train_split, b)] for b in batches[:4]]
    trainer.train_step(updates[0])  # compiles, allocates
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for update in updates[1:]:
            trainer.train_step(update)
    finally:
        torch.cuda.set_sync_debug_mode("default")
