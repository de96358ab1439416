"""What a model thinks of given translations: the log-probability of each reference under
teacher forcing, batched like decoding (fairseq's --score-reference, sockeye-score,
marian-scorer), for filtering noisy corpora and reranking n-best lists."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from mt.common.runtime import autocast
from mt.common.special_ids import BOS_ID, EOS_ID, PAD_ID
from mt.data.batches import token_batches


@dataclass
class Likelihood:
    log_prob: float  # of the reference's tokens and the EOS after them
    tokens: int  # how many: the reference's subwords + 1 (EOS)

    @property
    def per_token(self) -> float:
        return self.log_prob / self.tokens


def batch_log_probs(
    model: nn.Module, src: list[torch.Tensor], tgt: list[torch.Tensor], device: torch.device
) -> list[Likelihood]:
    """Each pair's teacher-forced log-probability, from one padded batch."""
    src_batch = pad_sequence(src, batch_first=True, padding_value=PAD_ID).to(device)
    tgt_in = pad_sequence(
        [torch.cat([torch.tensor([BOS_ID]), t]) for t in tgt], True, padding_value=PAD_ID
    ).to(device)
    tgt_out = pad_sequence(
        [torch.cat([t, torch.tensor([EOS_ID])]) for t in tgt], True, padding_value=PAD_ID
    ).to(device)
    with autocast(device):
        logits = model(src_batch, tgt_in)
    log_probs = logits.float().log_softmax(dim=-1).gather(2, tgt_out[..., None]).squeeze(2)
    real = tgt_out != PAD_ID
    sums = log_probs.masked_fill(~real, 0.0).sum(dim=1)
    return [Likelihood(s, n) for s, n in zip(sums.tolist(), real.sum(dim=1).tolist(), strict=True)]


@torch.no_grad()
def score_pairs(
    model: nn.Module,
    src_ids: list[torch.Tensor],
    tgt_ids: list[torch.Tensor],
    max_tokens: int,
    device: torch.device,
) -> list[Likelihood]:
    """Every pair's likelihood, in input order, in length-sorted batches of max_tokens."""
    was_training = model.training
    model.eval()
    src_lens = np.array([len(s) for s in src_ids])
    tgt_lens = np.array([len(t) + 1 for t in tgt_ids])
    found: list[Likelihood | None] = [None] * len(src_ids)
    for indices in token_batches(src_lens, tgt_lens, max_tokens, rng=None):
        batch = indices.tolist()
        scored = batch_log_probs(
            model, [src_ids[i] for i in batch], [tgt_ids[i] for i in batch], device
        )
        for i, likelihood in zip(batch, scored, strict=True):
            found[i] = likelihood
    model.train(was_training)
    return found


def score_lines(found: list[Likelihood]) -> str:
    """LOG_PROB<TAB>LOG_PROB_PER_TOKEN<TAB>TOKENS per line (mt.score's output)."""
    return "".join(f"{s.log_prob:.4f}\t{s.per_token:.4f}\t{s.tokens}\n" for s in found)


def summary(found: list[Likelihood]) -> str:
    """Lines, tokens, total log-probability and corpus perplexity in one line."""
    tokens = sum(s.tokens for s in found)
    log_prob = sum(s.log_prob for s in found)
    return (
        f"{len(found)} lines | {tokens} tokens | log-prob {log_prob:.2f} | "
        f"ppl {math.exp(-log_prob / max(tokens, 1)):.2f}"
    )
