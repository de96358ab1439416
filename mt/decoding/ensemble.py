"""Several models decoded as one, through the decoder contract: at every step the models'
probabilities are averaged (in log space: log of the mean, not the mean of the logs), each
model keeping its own memory and cache. Any mix of architectures that share a vocabulary
works, because search sees only the contract."""

from __future__ import annotations

import math

import torch
from torch import nn

from mt.models.contract import State


class Ensemble(nn.Module):
    def __init__(self, models: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(models)
        limits = [m.max_length for m in models if m.max_length is not None]
        self.max_length = min(limits) if limits else None

    def mean(self, log_probs: list[torch.Tensor]) -> torch.Tensor:
        """log((p_1 + ... + p_n) / n) from the members' log-probabilities."""
        return torch.logsumexp(torch.stack(log_probs), dim=0) - math.log(len(log_probs))

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher-forced: the averaged log-probabilities (B, T, V) stand in for logits."""
        return self.mean([m(src, tgt_in).log_softmax(dim=-1) for m in self.members])

    def encode(self, src: torch.Tensor) -> State:
        return [m.encode(src) for m in self.members]

    def decode_step(self, prev_tokens: torch.Tensor, memory: State, state: State):
        states = state or [None] * len(self.members)
        steps = [
            m.decode_step(prev_tokens, mem, s)
            for m, mem, s in zip(self.members, memory, states, strict=True)
        ]
        return self.mean([log_probs for log_probs, _ in steps]), [s for _, s in steps]

    def reorder_state(self, state: State, index: torch.Tensor) -> State:
        """Each member's memory or cache, reordered by that member."""
        if state is None:
            return None
        return [m.reorder_state(s, index) for m, s in zip(self.members, state, strict=True)]

    def decode_prefix(self, prefix: torch.Tensor, memory: State) -> torch.Tensor:
        return self.mean(
            [m.decode_prefix(prefix, mem) for m, mem in zip(self.members, memory, strict=True)]
        )

    def attention_maps(self, src: torch.Tensor, tgt_in: torch.Tensor) -> dict:
        """Each member's maps, named by its place in the ensemble."""
        return {
            f"model{k}/{name}": weights
            for k, m in enumerate(self.members, start=1)
            for name, weights in m.attention_maps(src, tgt_in).items()
        }
