"""Decode whole corpora: length-sorted batches through search, results back in input order."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from mt.config import DecodeConfig
from mt.data import token_batches
from mt.search import Hypothesis, beam_search, greedy_search
from mt.tokenizer import PAD_ID, Tokenizer


def autocast(device: torch.device):
    """bf16 autocast on CUDA; a no-op context on CPU, where bf16 matmuls are not faster."""
    return torch.autocast(
        device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"
    )


@torch.no_grad()
def decode_ids(
    model: nn.Module, src_ids: list[torch.Tensor], decode: DecodeConfig, device: torch.device
) -> list[list[Hypothesis]]:
    """n-best hypotheses for every source sentence (beam_size 1 = greedy), in input order."""
    was_training = model.training
    model.eval()
    lengths = torch.tensor([len(ids) for ids in src_ids]).numpy()
    # The beam multiplies every row: keep the decoding batch's rows near max_tokens.
    max_tokens = max(decode.max_tokens // decode.beam_size, 1)
    results: list[list[Hypothesis]] = [[] for _ in src_ids]
    for indices in token_batches(lengths, lengths, max_tokens, rng=None):
        src = pad_sequence(
            [src_ids[i] for i in indices], batch_first=True, padding_value=PAD_ID
        ).to(device)
        with autocast(device):
            if decode.beam_size == 1:
                nbest = [[h] for h in greedy_search(model, src, decode.max_len_a, decode.max_len_b)]
            else:
                nbest = beam_search(
                    model,
                    src,
                    decode.beam_size,
                    decode.length_penalty,
                    decode.nbest,
                    decode.max_len_a,
                    decode.max_len_b,
                )
        for i, hyps in zip(indices.tolist(), nbest, strict=True):
            results[i] = hyps
    model.train(was_training)
    return results


def translate(
    model: nn.Module,
    tokenizer: Tokenizer,
    src_ids: list[torch.Tensor],
    decode: DecodeConfig,
    device: torch.device,
) -> list[str]:
    """Detokenised best translation of every source sentence, in input order."""
    nbest = decode_ids(model, src_ids, decode, device)
    return tokenizer.decode_tgt([hyps[0].tokens for hyps in nbest])
