"""Training throughput of the Transformer recipes on one device: target tokens/s, ms per
update, peak memory and model FLOPs utilisation (MFU). Not a test: run it by hand.

    python scripts/bench_gpu.py --out bench.json            # base, big, Multi30k's recipe
    python scripts/bench_gpu.py --tiny --out tiny.json      # the same code at a tiny size (CPU)

Each recipe's real update (mt.training.update.Update: its precision, compile and fixed-shape
defaults for the device, its tokens per update) runs on synthetic batches of random ids whose
lengths follow a realistic distribution: log-normal, mean 30 subwords a side for base and big
(WMT-like), 16 for Multi30k's recipe (its measured mean); the target ±15% of the source.
MFU = 6·N·(target tokens/s) / peak, N the parameters (each shared matrix once, the output
projection included): the usual estimate of a forward and backward pass per target token.
An unknown device reports tokens/s without MFU.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import numpy as np
import torch

from mt.common.runtime import (
    describe_device,
    peak_memory_mb,
    pick_device,
    source_commit,
    synchronize,
    training_precision,
)
from mt.common.special_ids import BOS_ID, EOS_ID
from mt.config.store import composed_config
from mt.data.batches import Batch, FixedBatch, fixed_shape_batches, padded, token_batches
from mt.models import build_model, count_parameters
from mt.training.update import Update, optimizer_and_schedule, step_plan

# Dense bf16 tensor-core peaks (no sparsity), FLOP/s, by a substring of the device's name.
PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12}
# recipe -> (mean subwords a side, vocabulary)
RECIPES = {
    "transformer_base": (30, 32000),
    "transformer_big": (30, 32000),
    "transformer": (16, 8000),
}
TINY = ["model.d_model=32", "model.num_heads=2", "model.num_layers=1", "model.ff_dim=64"]
TINY += ["data.max_tokens=256", "trainer.accumulate=2"]


def peak_flops(device: torch.device) -> float | None:
    """The device's dense bf16 peak, or None for a device not in PEAK_BF16_FLOPS."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16_FLOPS.items() if key in name), None)


def synthetic_lengths(count: int, mean: float, rng: np.random.Generator):
    """Source and target lengths (end marker included): log-normal with this mean, sigma 0.5."""
    sigma = 0.5
    src = rng.lognormal(math.log(mean) - sigma**2 / 2, sigma, count)
    tgt = src * rng.uniform(0.85, 1.15, count)
    return [np.clip(np.rint(x), 2, 256).astype(np.int64) for x in (src, tgt)]


def synthetic_updates(config, vocab: int, mean: float, count: int, fixed: bool) -> list[list]:
    """count updates of config.trainer.accumulate batches of random ids, batched as training
    batches them (token budget data.max_tokens, fixed shapes when the step is compiled)."""
    rng = np.random.default_rng(0)
    per_update = config.trainer.accumulate
    src_lens, tgt_lens = synthetic_lengths(20 * count * per_update * 64, mean, rng)
    fixed_shapes = partial(fixed_shape_batches, longest=config.data.max_len)
    batching = fixed_shapes if fixed else token_batches
    chosen = batching(src_lens, tgt_lens, config.data.max_tokens, rng)[: count * per_update]

    def batch(chosen: np.ndarray | FixedBatch) -> Batch:
        indices, (src_len, tgt_len) = chosen if fixed else (chosen, (None, None))
        src = [rng.integers(4, vocab, n - 1) for n in src_lens[indices]]
        tgt = [rng.integers(4, vocab, n - 1) for n in tgt_lens[indices]]
        return Batch(
            padded(src, after=EOS_ID, length=src_len),
            padded(tgt, before=BOS_ID, length=tgt_len),
            padded(tgt, after=EOS_ID, length=tgt_len),
            int(tgt_lens[indices].sum()),
        )

    batches = [batch(b) for b in chosen]
    return [batches[k : k + per_update] for k in range(0, len(batches), per_update)]


def measure(recipe: str, args) -> dict:
    """One recipe's update, warmed up (compiled) and then timed over args.steps updates."""
    mean, vocab = RECIPES[recipe]
    overrides = [f"+experiment={recipe}", "data.root=.", *(TINY if args.tiny else []), *args.set]
    config = composed_config(overrides)
    t = config.trainer
    device = pick_device(args.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    torch.manual_seed(0)
    vocab = 1000 if args.tiny else vocab
    model = build_model(config.model, vocab, vocab, True).to(device)
    precision = training_precision(device, t.precision.value)
    plan = step_plan(device, t, config.data, precision)
    wrapped = torch.compile(model) if plan.compiled else model
    update = Update(model, wrapped, *optimizer_and_schedule(model, t, device), t, device, precision)
    updates = synthetic_updates(config, vocab, mean, args.warmup + args.steps, plan.fixed_shapes)
    started = time.perf_counter()
    for batches in updates[: args.warmup]:
        update(batches)
    synchronize(device)
    warmup_s = time.perf_counter() - started
    started = time.perf_counter()
    for batches in updates[args.warmup :]:
        update(batches)
    synchronize(device)
    seconds = time.perf_counter() - started
    timed = [b for batches in updates[args.warmup :] for b in batches]
    tokens = sum(b.num_tgt_tokens for b in timed)
    real = sum(int((b.tgt_out != 0).sum() + (b.src != 0).sum()) for b in timed)
    slots = sum(b.tgt_out.numel() + b.src.numel() for b in timed)
    params = count_parameters(model)
    rate = tokens / seconds
    peak = peak_flops(device)
    return {
        "recipe": recipe,
        "params": params,
        "precision": precision,
        "compiled": plan.compiled,
        "fixed_shapes": plan.fixed_shapes,
        "target_tokens_per_update": round(tokens / args.steps),
        "padding_efficiency": round(real / slots, 3),
        "distinct_shapes": len({(b.src.shape, b.tgt_in.shape) for b in timed}),
        "warmup_s": round(warmup_s, 1),
        "ms_per_update": round(1000 * seconds / args.steps, 1),
        "target_tokens_per_s": round(rate),
        "mfu": None if peak is None else round(6 * params * rate / peak, 4),
        "peak_memory_mb": round(peak_memory_mb(device)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=30, help="timed updates")
    parser.add_argument("--warmup", type=int, default=5, help="untimed updates first (compile)")
    parser.add_argument("--tiny", action="store_true", help="a tiny model: any CPU, seconds")
    parser.add_argument("--out", type=Path, default=Path("bench_gpu.json"))
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a config override"
    )
    args = parser.parse_args()
    results = []
    for recipe in args.recipes.split(","):
        results.append(measure(recipe, args))
        print(json.dumps(results[-1]), flush=True)
    device = pick_device(args.device)
    report = {
        "command": "python scripts/bench_gpu.py "
        + " ".join(f"--{k}={v}" for k, v in vars(args).items()),
        "commit": source_commit(),
        "device": describe_device(device),
        "peak_bf16_flops": peak_flops(device),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "results": results,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
