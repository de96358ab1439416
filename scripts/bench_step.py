"""The training step under the microscope: not a test, run it by hand on an idle machine.

    python scripts/bench_step.py ab +experiment=transformer data.root=DATA trainer.num_threads=2
    python scripts/bench_step.py profile +experiment=transformer data.root=DATA
    python scripts/bench_step.py vs-torch --batch 120 --length 17 --vocab 8000

ab        what each change to the CPU step bought: the real Trainer's step on the real corpus's
          batches, with each change undone in turn (each variant also undoes those above it),
          interleaved in one process so that the machine's drift hits every variant alike:
            now              this code: fused Adam, a one-function loss, dropout masks in the
                             input's dtype, freed memory kept in the heap, bf16 where the CPU
                             has it, lane dropout, fused projections
            per-tensor Adam  torch's default Adam on a CPU: a loop over the parameters
            unfused loss     F.cross_entropy's label smoothing
            bool masks       lane dropout's masks as bool, multiplied by aten's dropout kernel
            glibc's heap     freed memory back to the kernel (glibc's defaults), as before
            separate q/k/v   one matmul per projection, as before fused projections
            torch dropout    F.dropout and SDPA's own attention dropout (bernoulli_ per element)
            fp32             no autocast: the step as it was before
          the median ms per update and target tokens/s of each over --rounds rounds of --steps,
          and the fastest and slowest round (the noise).
profile   where a step's time goes: timed on the host and with the device's queue drained
          (host time far above device time: the accelerator waits on Python and launches),
          then torch.profiler's busiest operators, and its busiest operators by input shape.
vs-torch  mt's Transformer against a bare torch.nn.Transformer on the same random batch, the
          same vocabulary and loss: the difference is the model code alone.

ab and profile take mt.train's overrides after their options; vs-torch its own options.
The recipes at scale, with MFU on a GPU: scripts/bench_gpu.py. Every architecture's training
and decoding speed: scripts/benchmark.py.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import mt.models.dropout as lane_dropout
import mt.models.transformer as transformer
import mt.training.loss as loss
from mt.common.heap import keep_freed_memory
from mt.common.runtime import synchronize
from mt.config.store import composed_config
from mt.data.batches import make_batch, train_batches
from mt.models.transformer import Transformer, TransformerConfig
from mt.training.trainer import Trainer

NOW = {
    "loss": loss.smoothed_cross_entropy,
    "scaled": lane_dropout.scaled,
    "project": transformer.MultiHeadAttention.project,
    "dropout": lane_dropout.dropout,
    "attend": transformer.attend,
}
VARIANTS = [
    "now",
    "per-tensor Adam",
    "unfused loss",
    "bool masks",
    "glibc's heap",
    "separate q/k/v",
    "torch dropout",
    "fp32",
]


def real_updates(trainer: Trainer, count: int) -> list[list]:
    """The first count updates of the trainer's epoch 0, one batch each (lengths as in
    training)."""
    d, split = trainer.config.data, trainer.corpus.train
    chosen = train_batches(split, d.max_tokens, d.max_len, 1, 0, d.max_length_ratio)
    return [[make_batch(split, indices)] for indices in chosen[:count]]


def bool_mask_dropout(x, p, training):
    if not training or p == 0.0 or x.device.type != "cpu":
        return NOW["dropout"](x, p, training)
    keep = lane_dropout.keep_mask(x.shape, p, x.device, torch.bool)
    return lane_dropout._ScaleKept.apply(x, keep, 1.0 / (1.0 - p))


def aten_scaled(x, keep, scale):
    return torch.ops.aten.native_dropout_backward(x, keep, scale)


def separate_projections(self, x, *layers):
    return [self.split_heads(layer(x)) for layer in layers]


def torch_dropout(x, p, training):
    return F.dropout(x, p, training)


def sdpa_attend(q, k, v, mask, is_causal, dropout_p):
    with transformer.sdpa_kernel(transformer.ANY_SHAPE_BACKENDS):
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=is_causal, dropout_p=dropout_p
        )


def variant(trainer: Trainer, undone: int, precision: str) -> None:
    """Undo the changes VARIANTS[1 : undone + 1] on this trainer."""
    off = set(VARIANTS[1 : undone + 1])
    for group in trainer.update.optimizer.param_groups:
        group["fused"] = "per-tensor Adam" not in off or None
    loss.smoothed_cross_entropy = loss.torch_cross_entropy if "unfused loss" in off else NOW["loss"]
    lane_dropout.scaled = aten_scaled if "bool masks" in off else NOW["scaled"]
    chosen = bool_mask_dropout if "bool masks" in off else NOW["dropout"]
    lane_dropout.dropout = transformer.dropout = torch_dropout if "torch dropout" in off else chosen
    transformer.attend = sdpa_attend if "torch dropout" in off else NOW["attend"]
    keep_freed_memory("glibc's heap" not in off)
    separate = "separate q/k/v" in off
    transformer.MultiHeadAttention.project = separate_projections if separate else NOW["project"]
    trainer.update.precision = "fp32" if "fp32" in off else precision


def timed(trainer: Trainer, updates: list[list]) -> float:
    """Seconds per update over updates, the device's queue drained."""
    start = time.perf_counter()
    for update in updates:
        trainer.train_step(update)
    synchronize(trainer.device)
    return (time.perf_counter() - start) / len(updates)


def ab(trainer: Trainer, args) -> None:
    precision = trainer.update.precision
    updates = real_updates(trainer, args.warmup + args.steps)
    tokens = sum(u[0].num_tgt_tokens for u in updates[args.warmup :])
    seconds = {name: [] for name in VARIANTS}
    for _ in range(args.rounds):
        for undone, name in enumerate(VARIANTS):
            variant(trainer, undone, precision)
            timed(trainer, updates[: args.warmup])
            seconds[name].append(timed(trainer, updates[args.warmup :]))
    print(
        f"trained in {precision} where bf16 applies; {args.rounds} rounds of {args.steps} updates"
    )
    for name in VARIANTS:
        median = statistics.median(seconds[name])
        rate = tokens / args.steps / median
        spread = f"rounds {1000 * min(seconds[name]):.0f}-{1000 * max(seconds[name]):.0f} ms"
        print(f"{name:16s} {1000 * median:6.0f} ms/update {rate:7.0f} target tokens/s  {spread}")


def profile(trainer: Trainer, args) -> None:
    device = trainer.device
    start = time.perf_counter()
    updates = real_updates(trainer, args.warmup + 2 * args.steps)
    print(
        f"padding: {1000 * (time.perf_counter() - start) / len(updates):.2f} ms/update on the host"
    )
    if device.type == "cuda":
        updates = [[b.pin_memory() for b in u] for u in updates]
    timed(trainer, updates[: args.warmup])
    start = time.perf_counter()
    for update in updates[args.warmup : args.warmup + args.steps]:
        trainer.train_step(update)
    host = time.perf_counter() - start
    synchronize(device)
    total = time.perf_counter() - start
    print(
        f"{device}: host {1000 * host / args.steps:.1f} ms/step, "
        f"with the device's queue drained {1000 * total / args.steps:.1f} ms/step"
    )
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities, record_shapes=True) as profiled:
        timed(trainer, updates[args.warmup + args.steps :])
    print(profiled.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
    by_shape = profiled.key_averages(group_by_input_shape=True)
    print(by_shape.table(sort_by="self_cpu_time_total", row_limit=20, max_shapes_column_width=60))


class BareTransformer(nn.Module):
    """torch.nn.Transformer with embeddings and an output layer: the reference."""

    def __init__(self, vocab: int, cfg: TransformerConfig):
        super().__init__()
        self.embed = nn.Embedding(vocab, cfg.d_model)
        layers = (cfg.num_heads, cfg.num_layers, cfg.num_layers, cfg.ff_dim, cfg.dropout)
        self.transformer = nn.Transformer(
            cfg.d_model, *layers, batch_first=True, norm_first=cfg.pre_norm
        )
        self.output = nn.Linear(cfg.d_model, vocab)

    def forward(self, src, tgt):
        causal = nn.Transformer.generate_square_subsequent_mask(tgt.size(1))
        hidden = self.transformer(
            self.embed(src),
            self.embed(tgt),
            tgt_mask=causal,
            tgt_is_causal=True,
            src_key_padding_mask=src == 0,
        )
        return self.output(hidden)


def tokens_per_second(model: nn.Module, src, tgt, steps: int, repeats: int) -> float:
    """Target tokens per second of Adam steps on one batch: the median over repeats."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step():
        logits = model(src, tgt)
        F.cross_entropy(logits.flatten(0, 1), tgt.flatten(), label_smoothing=0.1).backward()
        optimizer.step()
        optimizer.zero_grad()

    for _ in range(3):  # warm-up: allocator, kernels
        step()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        rates.append(steps * tgt.numel() / (time.perf_counter() - start))
    return statistics.median(rates)


def vs_torch(args) -> None:
    torch.manual_seed(0)
    shape = dict(d_model=32, num_heads=2, num_layers=1, ff_dim=64) if args.tiny else {}
    cfg = TransformerConfig(dropout=0.1, **shape)
    src = torch.randint(4, args.vocab, (args.batch, args.length))
    tgt = torch.randint(4, args.vocab, (args.batch, args.length))
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}"
    )
    for name, model in (
        ("mt Transformer", Transformer(cfg, args.vocab, args.vocab, True)),
        ("torch.nn.Transformer", BareTransformer(args.vocab, cfg)),
    ):
        rate = tokens_per_second(model, src, tgt, args.steps, args.repeats)
        print(f"{name:22s} {rate:7.0f} target tokens/s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    modes = parser.add_subparsers(dest="mode", required=True)
    for mode, steps in (("ab", 10), ("profile", 40)):
        trainer_mode = modes.add_parser(mode, help=f"{mode}: mt.train overrides follow")
        trainer_mode.add_argument("--warmup", type=int, default=2 if mode == "ab" else 10)
        trainer_mode.add_argument("--steps", type=int, default=steps)
        trainer_mode.add_argument("--rounds", type=int, default=5, help="ab: rounds of variants")
    reference = modes.add_parser("vs-torch", help="against torch.nn.Transformer")
    reference.add_argument("--batch", type=int, default=120)
    reference.add_argument("--length", type=int, default=17)
    reference.add_argument("--vocab", type=int, default=8000)
    reference.add_argument("--steps", type=int, default=5)
    reference.add_argument("--repeats", type=int, default=3)
    reference.add_argument("--tiny", action="store_true", help="a tiny model: the code runs")
    args, overrides = parser.parse_known_args()
    if args.mode == "vs-torch":
        return vs_torch(args)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(composed_config(overrides), Path(run_dir))
        (ab if args.mode == "ab" else profile)(trainer, args)


if __name__ == "__main__":
    main()
