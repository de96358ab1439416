"""The Transformer of "Attention Is All You Need" (Vaswani et al., 2017), with a KV cache.

Pre-norm by default (more stable for small data and short warm-up), post-norm as in the paper
by `model.pre_norm=false`. Attention runs through F.scaled_dot_product_attention, which picks
fused kernels on CPU and GPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from mt.common.errors import MTError
from mt.common.ranges import DEPTH, FF_WIDTH, FRACTION, POSITIONS, WIDTH, Rule, check_ranges
from mt.common.special_ids import PAD_ID
from mt.models.contract import State, select_rows
from mt.models.dropout import Dropout, dropout
from mt.models.embeddings import embedding_tables


@dataclass
class TransformerConfig:
    d_model: int = 256
    num_heads: int = 8
    num_layers: int = 3  # in the encoder and in the decoder
    ff_dim: int = 1024
    dropout: float = 0.1
    pre_norm: bool = True
    tie_embeddings: bool = True  # only possible with a joint vocabulary
    max_positions: int = 1024

    RANGES: ClassVar[dict[str, Rule]] = {
        "d_model": WIDTH,
        "ff_dim": FF_WIDTH,
        **dict.fromkeys(("num_heads", "num_layers"), DEPTH),
        "max_positions": POSITIONS,
        "dropout": FRACTION,
    }

    def check(self) -> None:
        """Refuse a shape the network cannot take, naming the keys."""
        check_ranges(self, "model.")
        if self.d_model % self.num_heads:
            raise MTError(
                f"model.d_model={self.d_model} is not divisible by model.num_heads={self.num_heads}"
            )


# Every backend but cuDNN's: it builds an execution plan per input shape, about 10 ms of host
# time each (measured on an H100, torch 2.11), and batches and decoding steps bring new lengths
# all the time; it made a training step 20 times slower than its GPU work.
ANY_SHAPE_BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


def sinusoidal_positions(max_positions: int, d_model: int) -> torch.Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(...): (max_positions, d)."""
    position = torch.arange(max_positions, dtype=torch.float).unsqueeze(1)
    inv_freq = torch.exp(
        torch.arange(0, d_model, 2, dtype=torch.float) * (-math.log(10000.0) / d_model)
    )
    table = torch.zeros(max_positions, d_model)
    table[:, 0::2] = torch.sin(position * inv_freq)
    table[:, 1::2] = torch.cos(position * inv_freq)
    return table


class MultiHeadAttention(nn.Module):
    """Scaled dot-product attention over num_heads subspaces. Keys/values are projected
    separately (project_kv) so a decoder can cache them. The projections run as one matmul
    over the concatenated weights (q, k, v for self-attention; k, v for the encoder's memory),
    while the parameters stay four Linear layers, as checkpoints and exports keep them."""

    def __init__(self, d_model: int, num_heads: int, dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, d_model = x.shape
        return x.view(batch, length, self.num_heads, d_model // self.num_heads).transpose(1, 2)

    def project(self, x: torch.Tensor, *layers: nn.Linear) -> list[torch.Tensor]:
        """x (B, T, D) through `layers` in one matmul -> one (B, H, T, D/H) tensor each."""
        weight = torch.cat([layer.weight for layer in layers])
        bias = torch.cat([layer.bias for layer in layers])
        return [self.split_heads(y) for y in F.linear(x, weight, bias).chunk(len(layers), -1)]

    def project_kv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, D) -> keys and values, each (B, H, T, D/H)."""
        k, v = self.project(x, self.k_proj, self.v_proj)
        return k, v

    def project_qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Self-attention's queries, keys and values of x, each (B, H, T, D/H)."""
        q, k, v = self.project(x, self.q_proj, self.k_proj, self.v_proj)
        return q, k, v

    def forward(
        self,
        query: torch.Tensor,  # (B, Tq, D)
        k: torch.Tensor,  # (B, H, Tk, D/H)
        v: torch.Tensor,
        mask: torch.Tensor | None = None,  # bool, True = may attend; broadcast to (B, H, Tq, Tk)
        is_causal: bool = False,
    ) -> torch.Tensor:
        return self.combine(self.split_heads(self.q_proj(query)), k, v, mask, is_causal)

    def combine(
        self,
        q: torch.Tensor,  # (B, H, Tq, D/H), projected
        k: torch.Tensor,
        v: torch.Tensor,
        mask: torch.Tensor | None = None,
        is_causal: bool = False,
    ) -> torch.Tensor:
        """Attend with projected queries and merge the heads: (B, Tq, D)."""
        out = attend(q, k, v, mask, is_causal, self.dropout if self.training else 0.0)
        return self.out_proj(out.transpose(1, 2).flatten(2))

    def weights(self, query: torch.Tensor, k: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The attention distribution that forward applies, (B, H, Tq, Tk), for inspection:
        the fused kernel does not return it."""
        q = self.split_heads(self.q_proj(query))
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
        return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    is_causal: bool,
    dropout_p: float,
) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v over heads, (B, H, Tq, D/H): F.scaled_dot_product_attention,
    but on the CPU with dropout the same arithmetic written out with our dropout. SDPA's CPU
    kernels draw that dropout with bernoulli_, and its fused CPU kernel, which it takes without
    dropout, was 10 times slower than this for Multi30k's short sentences (bench_step.py
    profile)."""
    if dropout_p == 0.0 or q.device.type != "cpu":
        with sdpa_kernel(ANY_SHAPE_BACKENDS):
            return F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, is_causal=is_causal, dropout_p=dropout_p
            )
    scores = q @ k.transpose(-2, -1) * q.size(-1) ** -0.5
    if is_causal:
        mask = torch.ones(q.size(-2), k.size(-2), dtype=torch.bool, device=q.device).tril()
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return dropout(torch.softmax(scores, dim=-1), dropout_p, training=True) @ v


def feed_forward(d_model: int, ff_dim: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(d_model, ff_dim), nn.ReLU(), Dropout(dropout), nn.Linear(ff_dim, d_model)
    )


class Sublayers(nn.Module):
    """Shared residual wiring: pre-norm x + f(LN(x)) or post-norm LN(x + f(x))."""

    def __init__(self, cfg: TransformerConfig, count: int):
        super().__init__()
        self.pre_norm = cfg.pre_norm
        self.norms = nn.ModuleList(nn.LayerNorm(cfg.d_model) for _ in range(count))
        self.drop = Dropout(cfg.dropout)

    def before(self, x: torch.Tensor, i: int) -> torch.Tensor:
        return self.norms[i](x) if self.pre_norm else x

    def after(self, x: torch.Tensor, out: torch.Tensor, i: int) -> torch.Tensor:
        x = x + self.drop(out)
        return x if self.pre_norm else self.norms[i](x)


class EncoderLayer(Sublayers):
    def __init__(self, cfg: TransformerConfig):
        super().__init__(cfg, count=2)
        self.self_attn = MultiHeadAttention(cfg.d_model, cfg.num_heads, cfg.dropout)
        self.ff = feed_forward(cfg.d_model, cfg.ff_dim, cfg.dropout)

    def forward(self, x: torch.Tensor, src_mask: torch.Tensor) -> torch.Tensor:
        h = self.before(x, 0)
        x = self.after(x, self.self_attn.combine(*self.self_attn.project_qkv(h), src_mask), 0)
        return self.after(x, self.ff(self.before(x, 1)), 1)


class DecoderLayer(Sublayers):
    def __init__(self, cfg: TransformerConfig):
        super().__init__(cfg, count=3)
        self.self_attn = MultiHeadAttention(cfg.d_model, cfg.num_heads, cfg.dropout)
        self.cross_attn = MultiHeadAttention(cfg.d_model, cfg.num_heads, cfg.dropout)
        self.ff = feed_forward(cfg.d_model, cfg.ff_dim, cfg.dropout)

    def forward(
        self,
        x: torch.Tensor,  # (B, T, D): the whole target prefix, or only its newest position
        cross_kv: tuple[torch.Tensor, torch.Tensor],  # encoder keys/values, (B, H, S, D/H)
        src_mask: torch.Tensor,  # (B, 1, 1, S)
        past_kv: tuple[torch.Tensor, torch.Tensor] | None = None,  # cached self-attn keys/values
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        x, kv = self.self_attention(x, past_kv)
        x = self.after(x, self.cross_attn(self.before(x, 1), *cross_kv, mask=src_mask), 1)
        x = self.after(x, self.ff(self.before(x, 2)), 2)
        return x, kv

    def self_attention(
        self, x: torch.Tensor, past_kv: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        h = self.before(x, 0)
        q, k, v = self.self_attn.project_qkv(h)
        if past_kv is not None:  # one new position attends to every earlier one: no mask
            k, v = torch.cat([past_kv[0], k], dim=2), torch.cat([past_kv[1], v], dim=2)
        out = self.self_attn.combine(q, k, v, is_causal=past_kv is None)
        return self.after(x, out, 0), (k, v)

    def cross_attention_weights(
        self, x: torch.Tensor, cross_kv: tuple[torch.Tensor, torch.Tensor], src_mask: torch.Tensor
    ) -> torch.Tensor:
        """(B, H, T, S): where each target position of this layer looks in the source."""
        x, _ = self.self_attention(x)
        return self.cross_attn.weights(self.before(x, 1), cross_kv[0], src_mask)


class Transformer(nn.Module):
    def __init__(self, cfg: TransformerConfig, src_vocab: int, tgt_vocab: int, joint: bool):
        super().__init__()
        self.d_model = cfg.d_model
        self.max_length = cfg.max_positions
        tie = cfg.tie_embeddings and joint
        self.tgt_embed, self.src_embed = embedding_tables(tgt_vocab, src_vocab, cfg.d_model, tie)
        # Tied: the output projection is the target embedding matrix (Press & Wolf, 2017).
        self.output = None if tie else nn.Linear(cfg.d_model, tgt_vocab, bias=False)
        self.register_buffer(
            "positions", sinusoidal_positions(cfg.max_positions, cfg.d_model), persistent=False
        )
        self.drop = Dropout(cfg.dropout)
        self.encoder_layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.num_layers))
        self.decoder_layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.num_layers))
        # Pre-norm leaves the residual stream unnormalised: normalise each stack's output.
        self.encoder_norm = nn.LayerNorm(cfg.d_model) if cfg.pre_norm else nn.Identity()
        self.decoder_norm = nn.LayerNorm(cfg.d_model) if cfg.pre_norm else nn.Identity()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for name, p in self.named_parameters():
            if "embed" in name:
                # Embeddings are scaled by sqrt(d_model); this keeps their product near unit size.
                nn.init.normal_(p, mean=0.0, std=self.d_model**-0.5)
                with torch.no_grad():
                    p[PAD_ID].zero_()
            elif p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def embed(self, table: nn.Embedding, tokens: torch.Tensor, offset: int = 0) -> torch.Tensor:
        length = tokens.size(1)
        if offset + length > self.positions.size(0):
            raise ValueError(f"sequence of {offset + length} exceeds model.max_positions")
        x = table(tokens) * math.sqrt(self.d_model) + self.positions[offset : offset + length]
        return self.drop(x)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        x = self.decoder_norm(x)
        return F.linear(x, self.tgt_embed.weight) if self.output is None else self.output(x)

    def encode(self, src: torch.Tensor) -> State:
        """src (B, S) -> {"out": (B, S, D), "mask": (B, 1, 1, S) True at real tokens,
        "cross": every decoder layer's keys/values of "out"}. Memory, not decoder state: the
        beams of a sentence share it, so beam search never re-copies it when it reorders."""
        mask = (src != PAD_ID)[:, None, None, :]
        x = self.embed(self.src_embed, src)
        for layer in self.encoder_layers:
            x = layer(x, mask)
        out = self.encoder_norm(x)
        return {
            "out": out,
            "mask": mask,
            "cross": [layer.cross_attn.project_kv(out) for layer in self.decoder_layers],
        }

    def decode(self, tgt_in: torch.Tensor, memory: State) -> torch.Tensor:
        """The whole target prefix at once (teacher forcing): (B, T) -> (B, T, D)."""
        x = self.embed(self.tgt_embed, tgt_in)
        for layer, cross_kv in zip(self.decoder_layers, memory["cross"], strict=True):
            x, _ = layer(x, cross_kv, memory["mask"])
        return x

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: (B, S), (B, T) -> logits (B, T, V)."""
        return self.logits(self.decode(tgt_in, self.encode(src)))

    def decode_prefix(self, prefix: torch.Tensor, memory: State) -> torch.Tensor:
        """Uncached decoding: the next token's log-probs from the whole prefix, (B, V), with
        the encoder keys/values recomputed too, as a decoder without any cache does."""
        cross = [layer.cross_attn.project_kv(memory["out"]) for layer in self.decoder_layers]
        x = self.decode(prefix, {**memory, "cross": cross})
        return F.log_softmax(self.logits(x[:, -1]).float(), dim=-1)

    def attention_maps(self, src: torch.Tensor, tgt_in: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every decoder layer's cross-attention under teacher forcing, (B, H, T, S) each,
        named layerN/cross_attention (N from 1)."""
        memory = self.encode(src)
        x = self.embed(self.tgt_embed, tgt_in)
        maps = {}
        layers = zip(self.decoder_layers, memory["cross"], strict=True)
        for n, (layer, cross_kv) in enumerate(layers, 1):
            weights = layer.cross_attention_weights(x, cross_kv, memory["mask"])
            maps[f"layer{n}/cross_attention"] = weights
            x, _ = layer(x, cross_kv, memory["mask"])
        return maps

    def decode_step(
        self, prev_tokens: torch.Tensor, memory: State, state: State
    ) -> tuple[torch.Tensor, State]:
        """prev_tokens (B,) -> log-probs (B, V) of the next token; state: the self-attention
        keys/values of the prefix so far (the encoder's are in memory)."""
        past = state or [None] * len(self.decoder_layers)
        offset = 0 if state is None else state[0][0].size(2)
        x = self.embed(self.tgt_embed, prev_tokens[:, None], offset)  # (B, 1, D)
        present = []
        for layer, cross_kv, past_kv in zip(
            self.decoder_layers, memory["cross"], past, strict=True
        ):
            x, kv = layer(x, cross_kv, memory["mask"], past_kv)
            present.append(kv)
        return F.log_softmax(self.logits(x[:, -1]).float(), dim=-1), present

    def reorder_state(self, state: State, index: torch.Tensor) -> State:
        return select_rows(state, index)
