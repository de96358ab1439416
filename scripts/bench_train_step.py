"""Training-step throughput of mt's Transformer against a bare torch.nn.Transformer.

Both get the same random batch shape (a typical Multi30k token batch), the same vocabulary
and the same loss, so the difference is the model code alone. Not a test: run it by hand.

    python scripts/bench_train_step.py --batch 120 --length 17 --vocab 8000
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from mt.models.transformer import Transformer, TransformerConfig


class BareTransformer(nn.Module):
    """torch.nn.Transformer with embeddings and an output layer: the reference."""

    def __init__(self, vocab: int, cfg: TransformerConfig):
        super().__init__()
        self.embed = nn.Embedding(vocab, cfg.d_model)
        self.transformer = nn.Transformer(
            cfg.d_model,
            cfg.num_heads,
            cfg.num_layers,
            cfg.num_layers,
            cfg.ff_dim,
            cfg.dropout,
            batch_first=True,
            norm_first=cfg.pre_norm,
        )
        self.output = nn.Linear(cfg.d_model, vocab)

    def forward(self, src, tgt):
        causal = nn.Transformer.generate_square_subsequent_mask(tgt.size(1))
        return self.output(
            self.transformer(
                self.embed(src),
                self.embed(tgt),
                tgt_mask=causal,
                tgt_is_causal=True,
                src_key_padding_mask=src == 0,
            )
        )


def tokens_per_second(model: nn.Module, src, tgt, steps: int, repeats: int) -> float:
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
        rates.append(tgt.numel() * steps / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=120)
    parser.add_argument("--length", type=int, default=17)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    cfg = TransformerConfig(dropout=0.1)
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


if __name__ == "__main__":
    main()
