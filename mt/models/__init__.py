"""Model construction: one file per architecture, each with its config schema and checks."""

from __future__ import annotations

from torch import nn

from mt.models.bahdanau import Bahdanau, BahdanauConfig
from mt.models.rnn import RNNConfig, RNNSeq2Seq
from mt.models.transformer import Transformer, TransformerConfig

# name (the model config group's option, results' "model") -> (config schema, network)
ARCHITECTURES = {
    "transformer": (TransformerConfig, Transformer),
    "rnn": (RNNConfig, RNNSeq2Seq),
    "bahdanau": (BahdanauConfig, Bahdanau),
}


def build_model(model_cfg, src_vocab: int, tgt_vocab: int, joint: bool) -> nn.Module:
    """Instantiate the architecture that model_cfg describes for vocabularies of these sizes
    (joint: one vocabulary for both sides, so embeddings may be shared)."""
    network = next(net for schema, net in ARCHITECTURES.values() if type(model_cfg) is schema)
    return network(model_cfg, src_vocab, tgt_vocab, joint)


def model_name(model_cfg) -> str:
    """The architecture name of a model config: "transformer", "rnn" or "bahdanau"."""
    for name, (schema, _) in ARCHITECTURES.items():
        if type(model_cfg) is schema:
            return name
    raise TypeError(f"unknown model config type {type(model_cfg).__name__}")


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters, each shared tensor counted once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
