"""A trained Transformer as a CTranslate2 model directory, described layer by layer with
CTranslate2's own spec API so nothing is approximated (see mt/export.py for the command)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from mt.common.checkpoint import load_checkpoint
from mt.common.errors import MTError
from mt.common.files import os_error, remove_stale_temporaries, same_file, temporary_path
from mt.common.special_ids import BOS_ID, EOS_ID, UNK_ID
from mt.config.store import to_plain_dict
from mt.data.tokenizer import Tokenizer
from mt.decoding.translator import trained_from
from mt.deploy.engine import (
    FORMAT,
    METADATA,
    SOURCE_SPM,
    TARGET_SPM,
    export_digests,
    import_ctranslate2,
)
from mt.models import model_name
from mt.models.transformer import (
    DecoderLayer,
    EncoderLayer,
    MultiHeadAttention,
    Transformer,
    TransformerConfig,
)


def numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


def set_linear(spec, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
    spec.weight = numpy(weight)
    if bias is not None:
        spec.bias = numpy(bias)


def set_layer_norm(spec, norm: torch.nn.LayerNorm) -> None:
    spec.gamma, spec.beta = numpy(norm.weight), numpy(norm.bias)


def set_attention(spec, attention: MultiHeadAttention, self_attention: bool) -> None:
    """CTranslate2 fuses q/k/v (self-attention) or k/v (cross-attention) into one matrix."""
    q, k, v = attention.q_proj, attention.k_proj, attention.v_proj
    fused = [q, k, v] if self_attention else [k, v]
    linears = spec.linear
    if not self_attention:
        set_linear(linears[0], q.weight, q.bias)
        linears = linears[1:]
    set_linear(
        linears[0],
        torch.cat([p.weight for p in fused]),
        torch.cat([p.bias for p in fused]),
    )
    set_linear(linears[1], attention.out_proj.weight, attention.out_proj.bias)


def set_feed_forward(spec, layer: EncoderLayer | DecoderLayer, norm_index: int) -> None:
    set_layer_norm(spec.layer_norm, layer.norms[norm_index])
    set_linear(spec.linear_0, layer.ff[0].weight, layer.ff[0].bias)
    set_linear(spec.linear_1, layer.ff[3].weight, layer.ff[3].bias)


def set_stack_input(spec, embeddings_spec, embedding: torch.nn.Embedding, model: Transformer):
    # Our table starts at position 0 (the first source token, or BOS), as CTranslate2 counts.
    embeddings_spec.weight = numpy(embedding.weight)
    spec.position_encodings.encodings = numpy(model.positions)
    spec.scale_embeddings = True  # x * sqrt(d_model) before the positions are added


def transformer_spec(model: Transformer, cfg: TransformerConfig, tokenizer: Tokenizer):
    """The CTranslate2 TransformerSpec holding model's weights and tokenizer's vocabularies."""
    ctranslate2 = import_ctranslate2()
    specs = ctranslate2.specs
    spec = specs.TransformerSpec.from_config(cfg.num_layers, cfg.num_heads, pre_norm=cfg.pre_norm)
    encoder, decoder = spec.encoder, spec.decoder
    set_stack_input(encoder, encoder.embeddings[0], model.src_embed, model)
    for layer_spec, layer in zip(encoder.layer, model.encoder_layers, strict=True):
        set_attention(layer_spec.self_attention, layer.self_attn, self_attention=True)
        set_layer_norm(layer_spec.self_attention.layer_norm, layer.norms[0])
        set_feed_forward(layer_spec.ffn, layer, 1)
    set_stack_input(decoder, decoder.embeddings, model.tgt_embed, model)
    for layer_spec, layer in zip(decoder.layer, model.decoder_layers, strict=True):
        set_attention(layer_spec.self_attention, layer.self_attn, self_attention=True)
        set_layer_norm(layer_spec.self_attention.layer_norm, layer.norms[0])
        set_attention(layer_spec.attention, layer.cross_attn, self_attention=False)
        set_layer_norm(layer_spec.attention.layer_norm, layer.norms[1])
        set_feed_forward(layer_spec.ffn, layer, 2)
    if cfg.pre_norm:  # post-norm stacks end in their last sublayer's norm
        set_layer_norm(encoder.layer_norm, model.encoder_norm)
        set_layer_norm(decoder.layer_norm, model.decoder_norm)
    output = model.tgt_embed.weight if model.output is None else model.output.weight
    set_linear(decoder.projection, output)

    spec.config.layer_norm_epsilon = model.encoder_layers[0].norms[0].eps
    pieces = [tokenizer.src.id_to_piece(i) for i in range(tokenizer.src_vocab_size)]
    spec.register_source_vocabulary(pieces)
    spec.register_target_vocabulary(
        [tokenizer.tgt.id_to_piece(i) for i in range(tokenizer.tgt_vocab_size)]
    )
    # Our sources end in EOS (added by the tokenizer) and targets start from BOS.
    spec.config.unk_token = tokenizer.tgt.id_to_piece(UNK_ID)
    spec.config.bos_token = spec.config.decoder_start_token = tokenizer.tgt.id_to_piece(BOS_ID)
    spec.config.eos_token = tokenizer.tgt.id_to_piece(EOS_ID)
    return spec


def convert(spec, directory: Path, quantization: str) -> None:
    """CTranslate2's converter machinery (validate, quantize, save) over our spec."""
    converters = import_ctranslate2().converters

    class Loaded(converters.Converter):
        def _load(self):
            return spec

    Loaded().convert(str(directory), quantization=quantization)


def install(built: Path, out: Path, overwrite: bool) -> None:
    """Move a finished export into place; an existing out is replaced only when asked."""
    if not out.exists():
        os.rename(built, out)
        return
    if not overwrite:
        raise MTError(f"{out}: already exists (choose another out= or pass overwrite=true)")
    old = temporary_path(out.with_name(out.name + ".old"))
    os.rename(out, old)
    os.rename(built, out)
    shutil.rmtree(old)


def refuse_unsafe_out(checkpoint: Path, out: Path, overwrite: bool) -> None:
    """out may replace only an earlier export, and never hold the checkpoint itself."""
    if same_file(out, checkpoint) or checkpoint.resolve().is_relative_to(out.resolve()):
        raise MTError(f"out={out} would replace the checkpoint {checkpoint}: choose another out=")
    if not out.exists():
        return
    if not overwrite:
        raise MTError(f"{out}: already exists (choose another out= or pass overwrite=true)")
    if not (out / METADATA).is_file():
        raise MTError(f"out={out} exists and is not a directory mt.export wrote: not replacing it")


def export(
    checkpoint: Path | str, out: Path | str, quantization: str = "float32", overwrite: bool = False
) -> Path:
    """Write checkpoint as a CTranslate2 model directory at out (quantization: CTranslate2's
    name, e.g. "int8"); an existing out is replaced only when overwrite is true."""
    out = Path(out)
    refuse_unsafe_out(Path(checkpoint), out, overwrite)
    payload = load_checkpoint(checkpoint)
    model, tokenizer, config = trained_from(payload, checkpoint)
    name = model_name(config.model)
    if name != "transformer":
        raise MTError(
            f"{checkpoint}: a model of type '{name}', an architecture CTranslate2 does not "
            f"have; only Transformer checkpoints export"
        )
    spec = transformer_spec(model, config.model, tokenizer)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out.parent)  # what a killed export left
    built = temporary_path(out)
    try:
        convert(spec, built, quantization)
        (built / SOURCE_SPM).write_bytes(tokenizer.src_model)
        (built / TARGET_SPM).write_bytes(tokenizer.tgt_model)
        metadata = {
            "format": FORMAT,
            "checkpoint": str(checkpoint),
            "quantization": quantization,
            "ctranslate2": import_ctranslate2().__version__,
            "config": to_plain_dict(config),
            "languages": payload.get("languages"),  # for the tools' language check
            "sha256": export_digests(built),
        }
        (built / METADATA).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
        install(built, out, overwrite)
    except OSError as e:  # a full disk: named by out, not by the staging directory
        raise os_error(out, e, "the export") from None
    finally:
        shutil.rmtree(built, ignore_errors=True)
    return out
