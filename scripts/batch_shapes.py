"""One epoch's training batches of a corpus, with exact and with fixed shapes: how many
batches, how many distinct (pairs, source length, target length) shapes, and the padding
efficiency (real tokens / padded slots, both sides). Not a test: no model, seconds.

    python scripts/batch_shapes.py +experiment=transformer data.root=DATA
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir

from mt.config.store import register_configs, to_config
from mt.data.batches import fixed_length, train_batches
from mt.data.corpus import load_corpus

REPO = Path(__file__).resolve().parents[1]


def describe(batches: list[np.ndarray], src: np.ndarray, tgt: np.ndarray, fixed: bool) -> str:
    shapes, real, slots = set(), 0, 0
    for b in batches:
        lengths = np.array([src[b].max(), tgt[b].max()])
        s, t = fixed_length(lengths) if fixed else lengths
        shapes.add((len(b), int(s), int(t)))
        real += int(src[b].sum() + tgt[b].sum())
        slots += len(b) * int(s + t)
    return f"{len(batches)} batches, {len(shapes)} shapes, padding efficiency {real / slots:.3f}"


def main() -> None:
    register_configs()
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base=None):
        config = to_config(compose("config", overrides=sys.argv[1:]))
    d = config.data
    split = load_corpus(d).train
    src, tgt = split.src_lengths(), split.tgt_lengths()
    for fixed in (False, True):
        batches = train_batches(
            split, d.max_tokens, d.max_len, 1, 0, d.max_length_ratio, fixed_shapes=fixed
        )
        print(f"{'fixed' if fixed else 'exact'}: {describe(batches, src, tgt, fixed)}")


if __name__ == "__main__":
    main()
