"""The fast training step against the plain one: bf16 autocast with fixed-shape padding gives
the fp32 step's losses, on the same batches, within bf16's precision."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import make_config, update_losses

from mt.common.runtime import bf16_is_fast, training_precision
from mt.config.store import composed_config
from mt.data.batches import make_batch, train_batches
from mt.training.trainer import Trainer
from mt.training.update import step_plan

STEPS = 20
# bf16 keeps 8 significant bits (a relative step of 2^-8 = 0.4%) in every matmul's inputs;
# the per-token losses of 20 updates of the tiny model stayed within 3e-4 of fp32's (relative).
TOLERANCE = 5e-3


def step_losses(root, cache, run_dir, precision: str, fixed: bool) -> list[float]:
    overrides = (f"trainer.precision={precision}", "data.max_tokens=128")
    return update_losses(root, cache, run_dir, STEPS, *overrides, fixed=fixed)


def test_fast_step_gives_the_plain_steps_losses(memorise_root, cache_dir, tmp_path):
    plain = step_losses(memorise_root, cache_dir, tmp_path / "plain", "fp32", fixed=False)
    fast = step_losses(memorise_root, cache_dir, tmp_path / "fast", "bf16", fixed=True)
    assert plain[-1] < plain[0]  # it trains
    assert np.allclose(fast, plain, rtol=TOLERANCE, atol=0)
    # Padding alone changes nothing: fp32 with fixed shapes equals fp32 without, to float noise.
    padded = step_losses(memorise_root, cache_dir, tmp_path / "padded", "fp32", fixed=True)
    assert np.allclose(padded, plain, rtol=1e-5, atol=0)


def test_precision_auto_is_bf16_only_where_bf16_is_fast():
    cpu = torch.device("cpu")
    capabilities = torch.cpu.get_capabilities()
    native = bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))
    assert bf16_is_fast(cpu) == native
    assert training_precision(cpu, "auto") == ("bf16" if native else "fp32")
    assert training_precision(cpu, "fp32") == "fp32"
    assert training_precision(torch.device("cuda"), "auto") == "bf16"


@pytest.mark.parametrize(
    "device, precision, settings, plan",
    [
        ("cpu", "fp32", (), (False, False)),
        ("cpu", "bf16", (), (False, True)),  # a few oneDNN kernels, not hundreds an epoch
        ("cuda", "bf16", (), (True, True)),
        ("cpu", "bf16", ("data.fixed_shapes=false",), (False, False)),
        ("cuda", "bf16", ("trainer.compile=false",), (False, False)),
    ],
)
def test_the_step_plan_follows_device_precision_and_settings(device, precision, settings, plan):
    config = composed_config(["+experiment=transformer", *settings])
    chosen = step_plan(torch.device(device), config.trainer, config.data, precision)
    assert (chosen.compiled, chosen.fixed_shapes) == plan


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_the_step_runs_its_matmuls_in_the_chosen_precision(
    memorise_root, cache_dir, tmp_path, precision
):
    config = make_config(memorise_root, "tiny", cache_dir, f"trainer.precision={precision}")
    trainer = Trainer(config, tmp_path)
    seen = []
    hook = (
        trainer.model.decoder_layers[0]
        .ff[0]
        .register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    )
    batches = train_batches(trainer.corpus.train, 128, 128, 1, 0)
    trainer.train_step([make_batch(trainer.corpus.train, batches[0])])
    hook.remove()
    assert seen == [torch.bfloat16 if precision == "bf16" else torch.float32]
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())


def test_training_on_fixed_shapes_feeds_the_planned_tensors(memorise_root, cache_dir, tmp_path):
    """Through the trainer's feed (a worker process padding ahead): every tensor the model
    sees has one of the epoch's planned shapes."""
    overrides = ("data.fixed_shapes=true", "data.loader_workers=1", "trainer.max_steps=4")
    config = make_config(memorise_root, "tiny", cache_dir, "data.max_tokens=128", *overrides)
    trainer = Trainer(config, tmp_path)
    split = trainer.corpus.train
    planned = train_batches(split, 128, config.data.max_len, 1, 0, fixed_shapes=True)
    seen = []
    trainer.model.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape))
    trainer.fit()
    assert trainer.progress.step == 4
    shapes = {(len(b.indices), b.lengths[0]) for b in planned}
    assert {tuple(s) for s in seen[:4]} <= shapes  # then come the final validation's batches
