"""Where each target subword looked: a model's attention maps for a source sentence and a
translation of it, with the subword pieces that label their rows and columns.

The model re-reads the translation under teacher forcing (`attention_maps` in the model
contract); TensorBoard's heatmaps (mt/training/heatmap.py) and the server's explorer
(mt/serving/app.py) both draw from here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mt.common.special_ids import BOS_ID, EOS_ID
from mt.data.tokenizer import Tokenizer


@dataclass
class Alignment:
    src_pieces: list[str]  # the source subwords, EOS included: the columns
    tgt_pieces: list[str]  # the translation's subwords, EOS included: the rows
    maps: dict[str, torch.Tensor]  # name -> (heads, rows, columns), each row sums to 1


@torch.no_grad()
def attention_along(
    model: nn.Module, src_ids: torch.Tensor, hyp: list[int], device
) -> dict[str, torch.Tensor]:
    """Each of model's attention maps, (heads, len(hyp) + 1, S), over src_ids (S,) while it
    produces hyp (no BOS, no EOS) and then EOS, on the CPU."""
    src = src_ids[None].to(device)
    tgt_in = torch.tensor([[BOS_ID, *hyp]], device=device)
    return {name: m[0].float().cpu() for name, m in model.attention_maps(src, tgt_in).items()}


def labelled(
    tokenizer: Tokenizer, src_ids: torch.Tensor, hyp: list[int], maps: dict[str, torch.Tensor]
) -> Alignment:
    """maps over src_ids along hyp, with the pieces of their columns and rows."""
    return Alignment(
        [tokenizer.src.id_to_piece(i) for i in src_ids.tolist()],
        [tokenizer.tgt.id_to_piece(i) for i in [*hyp, EOS_ID]],
        maps,
    )


def align(
    model: nn.Module, tokenizer: Tokenizer, src_ids: torch.Tensor, hyp: list[int], device
) -> Alignment:
    """The attention of model over src_ids (S,) while it produces hyp (no BOS, no EOS)."""
    return labelled(tokenizer, src_ids, hyp, attention_along(model, src_ids, hyp, device))
