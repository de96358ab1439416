"""One epoch's training batches, with exact and with fixed shapes: how many batches, how many
distinct (pairs, source length, target length) shapes, and the padding efficiency (real
tokens / padded slots, both sides). Not a test: no model, seconds.

    python scripts/batch_shapes.py +experiment=transformer data.root=DATA
    python scripts/batch_shapes.py +experiment=transformer_base --synthetic 1000000

--synthetic N: N pairs of WMT-like lengths (bench_gpu.py's, about 30 pieces a side) instead
of the configured corpus.
"""

from __future__ import annotations

import argparse
from functools import partial

import numpy as np
from bench_gpu import synthetic_lengths

from mt.config.store import composed_config
from mt.data.batches import FixedBatch, fixed_shape_batches, token_batches
from mt.data.corpus import load_corpus


def describe(batches: list, src: np.ndarray, tgt: np.ndarray) -> str:
    """Batch count, distinct shapes and padding efficiency of exact or fixed batches."""
    shapes, slots = set(), 0
    for b in batches:
        indices, (s, t) = b if isinstance(b, FixedBatch) else (b, (src[b].max(), tgt[b].max()))
        shapes.add((len(indices), int(s), int(t)))
        slots += len(indices) * int(s + t)
    real = int(src.sum() + tgt.sum())
    return f"{len(batches)} batches, {len(shapes)} shapes, padding efficiency {real / slots:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--synthetic", type=int, help="this many WMT-like pairs instead")
    args, overrides = parser.parse_known_args()
    config = composed_config(overrides)
    d = config.data
    if args.synthetic:
        src, tgt = synthetic_lengths(args.synthetic, 30, np.random.default_rng(0))
    else:
        split = load_corpus(d).train
        src, tgt = split.src_lengths(), split.tgt_lengths()
        kept = (src <= d.max_len) & (tgt <= d.max_len)
        src, tgt = src[kept], tgt[kept]
    fixed = partial(fixed_shape_batches, longest=d.max_len)
    for name, batching in (("exact", token_batches), ("fixed", fixed)):
        batches = batching(src, tgt, d.max_tokens, np.random.default_rng(1))
        print(f"{name}: {describe(batches, src, tgt)}")


if __name__ == "__main__":
    main()
