"""RNN encoder-decoder (Sutskever et al., 2014; Cho et al., 2014): the no-attention baseline.

The decoder sees the source only through the encoder's final state: it starts from it and
reads the top layer's final hidden state as extra input at every step. Everything the
decoder knows about a long sentence must fit in that one vector.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from mt.common.ranges import DEPTH, FRACTION, WIDTH, Rule, check_ranges
from mt.common.special_ids import PAD_ID
from mt.models.contract import State, select_rows
from mt.models.dropout import Dropout
from mt.models.embeddings import embedding_tables


class RNNCell(Enum):
    lstm = "lstm"
    gru = "gru"


CELLS = {RNNCell.lstm: nn.LSTM, RNNCell.gru: nn.GRU}


@dataclass
class RNNConfig:
    cell: RNNCell = RNNCell.lstm
    emb_dim: int = 256
    hidden_dim: int = 512
    num_layers: int = 2  # in the encoder and in the decoder
    dropout: float = 0.3
    tie_embeddings: bool = True  # source and target embeddings; needs a joint vocabulary
    # Sutskever et al.'s trick: read the source backwards, so its first words are the last the
    # encoder saw, close to the first target words the decoder must produce.
    reverse_source: bool = True

    RANGES: ClassVar[dict[str, Rule]] = {
        **dict.fromkeys(("emb_dim", "hidden_dim"), WIDTH),
        "num_layers": DEPTH,
        "dropout": FRACTION,
    }

    def check(self) -> None:
        """Refuse a value out of range, naming the key."""
        check_ranges(self, "model.")


def to_batch_first(hidden) -> tuple[torch.Tensor, ...]:
    """torch's (layers, B, H) hidden state (a tuple for LSTM) -> tuple of (B, layers, H)."""
    hidden = hidden if isinstance(hidden, tuple) else (hidden,)
    return tuple(h.transpose(0, 1) for h in hidden)


def reverse_real_tokens(src: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each row's real tokens in place of the originals; padding stays at the end."""
    positions = torch.arange(src.size(1), device=src.device)
    lengths = lengths.to(src.device)[:, None]
    reversed_positions = torch.where(positions < lengths, lengths - 1 - positions, positions)
    return src.gather(1, reversed_positions)


def to_layers_first(hidden: tuple[torch.Tensor, ...]):
    """Inverse of to_batch_first."""
    hidden = tuple(h.transpose(0, 1).contiguous() for h in hidden)
    return hidden if len(hidden) == 2 else hidden[0]


class RNNSeq2Seq(nn.Module):
    def __init__(self, cfg: RNNConfig, src_vocab: int, tgt_vocab: int, joint: bool):
        super().__init__()
        self.max_length = None  # recurrent: no positions to run out of
        cell = CELLS[cfg.cell]
        between_layers = cfg.dropout if cfg.num_layers > 1 else 0.0
        tie = cfg.tie_embeddings and joint
        self.tgt_embed, self.src_embed = embedding_tables(tgt_vocab, src_vocab, cfg.emb_dim, tie)
        self.encoder = cell(
            cfg.emb_dim, cfg.hidden_dim, cfg.num_layers, batch_first=True, dropout=between_layers
        )
        self.decoder = cell(
            cfg.emb_dim + cfg.hidden_dim,
            cfg.hidden_dim,
            cfg.num_layers,
            batch_first=True,
            dropout=between_layers,
        )
        self.output = nn.Linear(cfg.hidden_dim, tgt_vocab)
        self.drop = Dropout(cfg.dropout)
        self.reverse_source = cfg.reverse_source

    def encode(self, src: torch.Tensor) -> State:
        """src (B, S) -> {"final": tuple of (B, layers, H)}: the encoder's final state only."""
        lengths = (src != PAD_ID).sum(dim=1).cpu()
        if self.reverse_source:
            src = reverse_real_tokens(src, lengths)
        packed = pack_padded_sequence(
            self.drop(self.src_embed(src)), lengths, batch_first=True, enforce_sorted=False
        )
        _, final = self.encoder(packed)  # packing makes this the state at each real last token
        return {"final": to_batch_first(final)}

    def run_decoder(self, tokens: torch.Tensor, memory: State, hidden: tuple[torch.Tensor, ...]):
        """tokens (B, T) -> decoder outputs (B, T, H) and the new batch-first hidden state."""
        summary = memory["final"][0][:, -1]  # top layer's final hidden state, (B, H)
        x = self.drop(self.tgt_embed(tokens))
        x = torch.cat([x, summary[:, None, :].expand(-1, x.size(1), -1)], dim=-1)
        out, hidden = self.decoder(x, to_layers_first(hidden))
        return self.drop(out), to_batch_first(hidden)

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        memory = self.encode(src)
        out, _ = self.run_decoder(tgt_in, memory, memory["final"])
        return self.output(out)

    def attention_maps(self, src: torch.Tensor, tgt_in: torch.Tensor) -> dict[str, torch.Tensor]:
        return {}  # no attention: the decoder never looks back at the source

    def decode_prefix(self, prefix: torch.Tensor, memory: State) -> torch.Tensor:
        out, _ = self.run_decoder(prefix, memory, memory["final"])
        return F.log_softmax(self.output(out[:, -1]).float(), dim=-1)

    def decode_step(self, prev_tokens: torch.Tensor, memory: State, state: State):
        hidden = memory["final"] if state is None else state["hidden"]
        out, hidden = self.run_decoder(prev_tokens[:, None], memory, hidden)
        return F.log_softmax(self.output(out[:, 0]).float(), dim=-1), {"hidden": hidden}

    def reorder_state(self, state: State, index: torch.Tensor) -> State:
        return select_rows(state, index)
