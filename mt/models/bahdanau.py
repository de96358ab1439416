"""Attention-based encoder-decoder of Bahdanau, Cho & Bengio (2015), "Neural Machine
Translation by Jointly Learning to Align and Translate".

A bidirectional GRU encodes the source; at every step the decoder GRU reads the previous
target word and a context c_t = sum_j alpha_tj h_j, where alpha_t attends from the previous
decoder state s_{t-1} over all encoder states. The score function is configurable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from mt.common.errors import MTError
from mt.common.ranges import FRACTION, WIDTH, Rule, check_ranges
from mt.common.special_ids import PAD_ID
from mt.models.attention import Attention, AttentionScore
from mt.models.contract import State, select_rows
from mt.models.dropout import Dropout
from mt.models.embeddings import embedding_tables


@dataclass
class BahdanauConfig:
    emb_dim: int = 256
    hidden_dim: int = 512  # decoder state; each encoder direction gets half
    attention_dim: int = 256  # additive attention's hidden layer
    score: AttentionScore = AttentionScore.additive
    dropout: float = 0.3
    tie_embeddings: bool = True

    RANGES: ClassVar[dict[str, Rule]] = {
        **dict.fromkeys(("emb_dim", "hidden_dim", "attention_dim"), WIDTH),
        "dropout": FRACTION,
    }

    def check(self) -> None:
        """Refuse a shape the network cannot take, naming the key."""
        check_ranges(self, "model.")
        if self.hidden_dim % 2:
            raise MTError(f"model.hidden_dim={self.hidden_dim} must be even (two directions)")


class Bahdanau(nn.Module):
    def __init__(self, cfg: BahdanauConfig, src_vocab: int, tgt_vocab: int, joint: bool):
        super().__init__()
        self.max_length = None  # recurrent: no positions to run out of
        hidden = cfg.hidden_dim
        tie = cfg.tie_embeddings and joint
        self.tgt_embed, self.src_embed = embedding_tables(tgt_vocab, src_vocab, cfg.emb_dim, tie)
        # Each direction gets half the width, so encoder states and decoder state have the same
        # size and every score function (dot products included) applies.
        self.encoder = nn.GRU(cfg.emb_dim, hidden // 2, batch_first=True, bidirectional=True)
        self.init_state = nn.Linear(hidden // 2, hidden)  # s_0 = tanh(W h_1 backward)
        self.attention = Attention(cfg.score.value, hidden, hidden, cfg.attention_dim)
        self.decoder = nn.GRUCell(cfg.emb_dim + hidden, hidden)
        # Deep output: the next word depends on state, context and previous word.
        self.pre_output = nn.Linear(hidden + hidden + cfg.emb_dim, cfg.emb_dim)
        self.output = nn.Linear(cfg.emb_dim, tgt_vocab)
        self.drop = Dropout(cfg.dropout)

    def encode(self, src: torch.Tensor) -> State:
        """src (B, S) -> encoder states (B, S, H), their attention keys, mask and s_0."""
        mask = src != PAD_ID
        packed = pack_padded_sequence(
            self.drop(self.src_embed(src)),
            mask.sum(1).cpu(),
            batch_first=True,
            enforce_sorted=False,
        )
        out, final = self.encoder(packed)
        states, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))
        return {
            "states": states,
            "keys": self.attention.project_keys(states),
            "mask": mask,
            "init": torch.tanh(self.init_state(final[1])),  # backward direction read all of src
        }

    def step(self, prev_tokens: torch.Tensor, memory: State, s_prev: torch.Tensor):
        """One decoder step: (B,) tokens and s_{t-1} (B, H) -> output features, s_t, alpha_t."""
        embedded = self.drop(self.tgt_embed(prev_tokens))
        context, weights = self.attention(s_prev, memory["keys"], memory["states"], memory["mask"])
        s = self.decoder(torch.cat([embedded, context], dim=-1), s_prev)
        features = torch.tanh(self.pre_output(torch.cat([s, context, embedded], dim=-1)))
        return self.drop(features), s, weights

    def decode(self, tgt_in: torch.Tensor, memory: State):
        """Output features (B, T, E) and alignments (B, T, S) along the given target prefix."""
        s, features, alignments = memory["init"], [], []
        for t in range(tgt_in.size(1)):
            out, s, weights = self.step(tgt_in[:, t], memory, s)
            features.append(out)
            alignments.append(weights)
        return torch.stack(features, dim=1), torch.stack(alignments, dim=1)

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        return self.output(self.decode(tgt_in, self.encode(src))[0])

    def attention_maps(self, src: torch.Tensor, tgt_in: torch.Tensor) -> dict[str, torch.Tensor]:
        """The alignment alpha as a single-head map, (B, 1, T, S)."""
        return {"alignment": self.decode(tgt_in, self.encode(src))[1][:, None]}

    def decode_prefix(self, prefix: torch.Tensor, memory: State) -> torch.Tensor:
        features = self.decode(prefix, memory)[0][:, -1]
        return F.log_softmax(self.output(features).float(), dim=-1)

    def decode_step(self, prev_tokens: torch.Tensor, memory: State, state: State):
        s_prev = memory["init"] if state is None else state["s"]
        features, s, weights = self.step(prev_tokens, memory, s_prev)
        log_probs = F.log_softmax(self.output(features).float(), dim=-1)
        return log_probs, {"s": s, "attention": weights}

    def reorder_state(self, state: State, index: torch.Tensor) -> State:
        return select_rows(state, index)
