"""The embedding tables every architecture starts from."""

from __future__ import annotations

from torch import nn

from mt.common.special_ids import PAD_ID


def embedding_tables(
    tgt_vocab: int, src_vocab: int, width: int, tie: bool
) -> tuple[nn.Embedding, nn.Embedding]:
    """The target and source embedding tables, target first (the order parameters are made
    and initialised in); tied, one table serves both (it needs a joint vocabulary)."""
    tgt = nn.Embedding(tgt_vocab, width, padding_idx=PAD_ID)
    src = tgt if tie else nn.Embedding(src_vocab, width, padding_idx=PAD_ID)
    return tgt, src
