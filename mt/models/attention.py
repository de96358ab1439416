"""Attention over encoder states for the recurrent models, with selectable score functions.

    additive     v^T tanh(W s + U h)          Bahdanau et al., 2015
    dot          s^T h                          Luong et al., 2015
    general      s^T W h                        Luong et al., 2015
    scaled_dot   s^T h / sqrt(d)                Vaswani et al., 2017
    kernel       -||W s - U h||^2 / 2           Nadaraya-Watson pooling with a Gaussian kernel
                                                on learned projections (Nadaraya 1964, Watson 1964)

Keys are projected once per sentence (`project_keys`), not at every decoder step.
"""

from __future__ import annotations

import math
from enum import Enum

import torch
from torch import nn


class AttentionScore(Enum):
    additive = "additive"
    dot = "dot"
    general = "general"
    scaled_dot = "scaled_dot"
    kernel = "kernel"  # Nadaraya-Watson: -||W s - U h||^2 / 2


SCORES = tuple(score.value for score in AttentionScore)


class Attention(nn.Module):
    def __init__(self, score: str, query_dim: int, key_dim: int, hidden_dim: int):
        super().__init__()
        if score not in SCORES:
            raise ValueError(f"unknown attention score '{score}' (one of {SCORES})")
        if score in ("dot", "scaled_dot") and query_dim != key_dim:
            raise ValueError(f"{score} attention needs query_dim == key_dim")
        self.score = score
        if score == "additive":
            self.query_proj = nn.Linear(query_dim, hidden_dim, bias=False)
            self.key_proj = nn.Linear(key_dim, hidden_dim)
            self.v = nn.Linear(hidden_dim, 1, bias=False)
        elif score == "general":
            self.key_proj = nn.Linear(key_dim, query_dim, bias=False)
        elif score == "kernel":
            self.query_proj = nn.Linear(query_dim, hidden_dim, bias=False)
            self.key_proj = nn.Linear(key_dim, hidden_dim, bias=False)

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        """(B, S, Dk) -> what the score compares queries with, computed once per sentence."""
        return self.key_proj(keys) if hasattr(self, "key_proj") else keys

    def scores(self, query: torch.Tensor, projected_keys: torch.Tensor) -> torch.Tensor:
        """Unnormalised scores (B, S) of a query (B, Dq) against every key."""
        if self.score == "additive":
            hidden = torch.tanh(self.query_proj(query)[:, None, :] + projected_keys)
            return self.v(hidden).squeeze(-1)
        if self.score == "kernel":
            # A Gaussian kernel: keys near the query weigh most, the softmax normalises.
            distance = self.query_proj(query)[:, None, :] - projected_keys
            return -0.5 * distance.pow(2).sum(-1)
        scores = torch.bmm(projected_keys, query[:, :, None]).squeeze(-1)
        if self.score == "scaled_dot":
            # q.k of unit-variance vectors has variance d: unscaled, the softmax saturates.
            scores = scores / math.sqrt(query.size(-1))
        return scores

    def forward(
        self,
        query: torch.Tensor,  # (B, Dq): the decoder state
        projected_keys: torch.Tensor,  # (B, S, *): from project_keys
        values: torch.Tensor,  # (B, S, Dk): the encoder states
        mask: torch.Tensor,  # (B, S) bool, True at real source tokens
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Context (B, Dk) = sum_j alpha_j h_j and the weights alpha (B, S)."""
        scores = self.scores(query, projected_keys)
        # Padding gets exactly zero weight: softmax of -inf.
        weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
        context = torch.bmm(weights[:, None, :], values).squeeze(1)
        return context, weights
