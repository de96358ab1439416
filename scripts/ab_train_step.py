"""What each change to the CPU training step bought: the real Trainer's step on the real
corpus's batches, with each change undone in turn, interleaved in one process so that the
machine's drift hits every variant alike. Not a test: run it by hand, on an idle machine.

    python scripts/ab_train_step.py +experiment=transformer data.root=DATA trainer.num_threads=2

Variants (each also undoes the ones above it):
  now              this code: bf16 where the CPU has it, lane dropout, fused projections
  separate q/k/v   one matmul per projection, as before fused projections
  torch dropout    F.dropout and SDPA's own attention dropout (bernoulli_ per element)
  fp32             no autocast: the step as it was before
Prints the median ms per update and target tokens/s of each over ROUNDS rounds of STEPS.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch.nn.functional as F
from hydra import compose, initialize_config_dir

import mt.models.dropout as lane_dropout
import mt.models.transformer as transformer
from mt.config.store import register_configs, to_config
from mt.data.batches import make_batch, train_batches
from mt.training.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
WARM_UP, STEPS, ROUNDS = 2, 10, 5
NOW = {
    "project": transformer.MultiHeadAttention.project,
    "dropout": lane_dropout.dropout,
    "attend": transformer.attend,
}


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
    """Undo the first `undone` changes (projections, dropout, bf16) on this trainer."""
    transformer.MultiHeadAttention.project = separate_projections if undone >= 1 else NOW["project"]
    lane_dropout.dropout = torch_dropout if undone >= 2 else NOW["dropout"]
    transformer.attend = sdpa_attend if undone >= 2 else NOW["attend"]
    trainer.update.precision = "fp32" if undone >= 3 else precision


def main() -> None:
    register_configs()
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base=None):
        config = to_config(compose("config", overrides=sys.argv[1:]))
    names = ["now", "separate q/k/v", "torch dropout", "fp32"]
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(config, Path(run_dir))
        precision = trainer.update.precision
        d, split = config.data, trainer.corpus.train
        chosen = train_batches(split, d.max_tokens, d.max_len, 1, 0, d.max_length_ratio)
        updates = [[make_batch(split, b)] for b in chosen[: WARM_UP + STEPS]]
        tokens = sum(u[0].num_tgt_tokens for u in updates[WARM_UP:])
        seconds = {name: [] for name in names}
        for _ in range(ROUNDS):
            for undone, name in enumerate(names):
                variant(trainer, undone, precision)
                for update in updates[:WARM_UP]:
                    trainer.train_step(update)
                start = time.perf_counter()
                for update in updates[WARM_UP:]:
                    trainer.train_step(update)
                seconds[name].append((time.perf_counter() - start) / STEPS)
    print(f"trained in {precision} where bf16 applies; {ROUNDS} rounds of {STEPS} updates")
    for name in names:
        median = statistics.median(seconds[name])
        rate = tokens / STEPS / median
        print(f"{name:16s} {1000 * median:6.0f} ms/update {rate:7.0f} target tokens/s")


if __name__ == "__main__":
    main()
