"""Scoring a model on a held-out split: its loss, and BLEU/chrF of its decoded output."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mt.common.runtime import autocast
from mt.config.schema import DecodeConfig
from mt.data.batches import make_batch, token_batches
from mt.data.corpus import Split
from mt.data.tokenizer import Tokenizer
from mt.decoding.inference import translate
from mt.decoding.scoring import corpus_scores
from mt.training.loss import token_loss


@torch.no_grad()
def split_loss(model: nn.Module, split: Split, max_tokens: int, device: torch.device) -> float:
    """Mean per-token negative log-likelihood (no label smoothing) over a split."""
    model.eval()
    total, tokens = 0.0, 0
    for indices in token_batches(split.src_lengths(), split.tgt_lengths(), max_tokens, rng=None):
        batch = make_batch(split, indices).to(device)
        with autocast(device):
            total += token_loss(model, batch, label_smoothing=0.0).item()
        tokens += batch.num_tgt_tokens
    model.train()
    return total / tokens


def decode_split(
    model: nn.Module, tokenizer: Tokenizer, split: Split, decode: DecodeConfig, device
) -> tuple[dict, list[str]]:
    """The split's translations and their scores against its references."""
    hyps = translate(model, tokenizer, split.src_ids, decode, device)
    if not split.directions:
        return corpus_scores(hyps, split.tgt_text), hyps
    return direction_scores(split, hyps), hyps


def direction_scores(split: Split, hyps: list[str]) -> dict:
    """A multilingual split's scores per direction and, as bleu, chrf and bleu_lc, their mean
    over the trained directions (zero-shot ones are scored, not averaged)."""
    per = {}
    for k, name in enumerate(split.directions):
        chosen = np.flatnonzero(split.sources == k)
        scores = corpus_scores([hyps[i] for i in chosen], [split.tgt_text[i] for i in chosen])
        per[name] = {key: scores[key] for key in ("bleu", "chrf", "bleu_lc", "signature")}
    trained = [per[name] for name in split.directions if name not in split.zero_shot]
    mean = {key: float(np.mean([s[key] for s in trained])) for key in ("bleu", "chrf", "bleu_lc")}
    signature = f"mean of {len(trained)} directions | {trained[0]['signature']}"
    return {**mean, "signature": signature, "directions": per, "zero_shot": split.zero_shot}


def samples_markdown(split: Split, hyps: list[str], count: int) -> str:
    """The first count source/reference/hypothesis triples, as TensorBoard markdown."""
    return "\n\n".join(
        f"**src** {split.src_text[i]}  \n**ref** {split.tgt_text[i]}  \n**hyp** {hyps[i]}"
        for i in range(min(count, len(split)))
    )
