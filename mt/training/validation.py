"""Scoring a model on a held-out split: its loss, and BLEU/chrF of its decoded output."""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

from mt.common.runtime import autocast
from mt.config.checks import parse
from mt.config.schema import DecodeConfig
from mt.data.batches import make_batch, token_batches
from mt.data.corpus import Split
from mt.data.languages import held_out_profiles, percent_in
from mt.data.tokenizer import Tokenizer
from mt.decoding.inference import translate
from mt.evaluation.scores import corpus_scores
from mt.training.loss import token_loss

log = logging.getLogger("mt")


def fitting_pairs(split: Split, max_length: int | None) -> np.ndarray:
    """The pairs of split whose source and target fit the model's positions (all of them
    for a model without a limit), with a warning naming how many do not."""
    src, tgt = split.src_lengths(), split.tgt_lengths()
    fits = np.ones(len(split), dtype=bool) if max_length is None else (src <= max_length)
    if max_length is not None:
        fits &= tgt <= max_length
    if not fits.all():
        log.warning(
            "validation loss: %d pairs longer than the model's %d positions left out",
            int((~fits).sum()),
            max_length,
        )
    return np.flatnonzero(fits)


@torch.no_grad()
def split_loss(model: nn.Module, split: Split, max_tokens: int, device: torch.device) -> float:
    """Mean per-token negative log-likelihood (no label smoothing) over the pairs of a split
    that fit the model: a long sentence must not end a run that trained for hours."""
    model.eval()
    total, tokens = 0.0, 0
    kept = fitting_pairs(split, model.max_length)
    src, tgt = split.src_lengths()[kept], split.tgt_lengths()[kept]
    for batch_rows in token_batches(src, tgt, max_tokens, rng=None):
        batch = make_batch(split, kept[batch_rows]).to(device)
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
    """A multilingual split's scores per direction (with the percentage of hypotheses that read
    as the target language) and, as bleu, chrf and bleu_lc, their mean over the trained
    directions (zero-shot ones are scored, not averaged)."""
    chosen = [np.flatnonzero(split.sources == k) for k in range(len(split.directions))]
    targets = [parse(name)[1] for name in split.directions]
    references: dict[str, list[str]] = {}  # per target language: what it reads like
    for lang, indices in zip(targets, chosen, strict=True):
        references.setdefault(lang, []).extend(split.tgt_text[i] for i in indices)
    profiles = held_out_profiles(references)
    per = {}
    for name, lang, indices in zip(split.directions, targets, chosen, strict=True):
        found = [hyps[i] for i in indices]
        scores = corpus_scores(found, [split.tgt_text[i] for i in indices])
        per[name] = {key: scores[key] for key in ("bleu", "chrf", "bleu_lc", "signature")}
        # Off-target output (English asked for French) is how zero-shot directions fail.
        per[name]["percent_in_target"] = round(percent_in(found, lang, profiles), 1)
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
