"""Model construction: one file per architecture, chosen by the type of its config."""

from __future__ import annotations

from torch import nn

from mt.config import BahdanauConfig, RNNConfig, TransformerConfig
from mt.models.bahdanau import Bahdanau
from mt.models.rnn import RNNSeq2Seq
from mt.models.transformer import Transformer

ARCHITECTURES = {TransformerConfig: Transformer, RNNConfig: RNNSeq2Seq, BahdanauConfig: Bahdanau}


def build_model(model_cfg, src_vocab: int, tgt_vocab: int, joint: bool) -> nn.Module:
    """Instantiate the architecture that model_cfg describes for vocabularies of these sizes
    (joint: one vocabulary for both sides, so embeddings may be shared)."""
    return ARCHITECTURES[type(model_cfg)](model_cfg, src_vocab, tgt_vocab, joint)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters, each shared tensor counted once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
