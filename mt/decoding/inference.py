"""Decode whole corpora: length-sorted batches through search, results back in input order."""

from __future__ import annotations

import logging

import torch
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from mt.common.progress import bar
from mt.common.runtime import autocast
from mt.common.special_ids import PAD_ID
from mt.config.schema import DecodeConfig
from mt.data.batches import token_batches
from mt.data.tokenizer import Tokenizer
from mt.decoding.alignment import attention_along
from mt.decoding.beam_history import BeamHistory, Within
from mt.decoding.search import (
    Hypothesis,
    StepRecorder,
    beam_search,
    greedy_search,
    sample_search,
    sampler,
)
from mt.models.contract import Seq2Seq, Uncached

log = logging.getLogger("mt")


def fit_sources(src_ids: list[torch.Tensor], max_length: int | None) -> list[torch.Tensor]:
    """Sources longer than the model's positions cut to fit (their EOS kept), with a warning:
    a long validation or test sentence must not end a run that trained for hours."""
    if max_length is None or all(len(ids) <= max_length for ids in src_ids):
        return src_ids
    cut = sum(len(ids) > max_length for ids in src_ids)
    log.warning("%d sources longer than the model's %d positions: cut to fit", cut, max_length)
    return [
        ids if len(ids) <= max_length else torch.cat([ids[: max_length - 1], ids[-1:]])
        for ids in src_ids
    ]


def rows_per_source(decode: DecodeConfig) -> int:
    """Decoder rows one source sentence takes: its beam, or its samples."""
    return decode.nbest if decode.sampling else decode.beam_size


def search(
    model: Seq2Seq,
    src: torch.Tensor,
    decode: DecodeConfig,
    generator: torch.Generator | None,
    prefix: torch.Tensor | None,
    history: StepRecorder | None = None,
) -> list[list[Hypothesis]]:
    """n-best hypotheses for one padded batch, by the search decode asks for (a beam
    search's steps recorded into history, if given)."""
    a, b, alpha = decode.max_len_a, decode.max_len_b, decode.length_penalty
    if decode.sampling:
        pick = sampler(decode.top_k, decode.top_p, decode.temperature, generator)
        return sample_search(model, src, decode.nbest, alpha, a, b, pick, prefix)
    if decode.beam_size == 1:
        return [[h] for h in greedy_search(model, src, a, b, prefix=prefix)]
    return beam_search(model, src, decode.beam_size, alpha, decode.nbest, a, b, prefix, history)


def padded(rows: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    return pad_sequence(rows, batch_first=True, padding_value=PAD_ID).to(device)


@torch.no_grad()
def decode_ids(
    model: nn.Module,
    src_ids: list[torch.Tensor],
    decode: DecodeConfig,
    device: torch.device,
    prefixes: list[torch.Tensor] | None = None,
    history: BeamHistory | Within | None = None,
) -> list[list[Hypothesis]]:
    """n-best hypotheses for every source sentence (beam_size 1 = greedy), in input order,
    each starting with its target prefix if given (empty: none); with decode.sampling, the
    same samples for the same decode.seed and input. history records each sentence's beam
    search (its sentence i is src_ids[i])."""
    was_training = model.training
    model.eval()
    src_ids = fit_sources(src_ids, model.max_length)
    lengths = torch.tensor([len(ids) for ids in src_ids]).numpy()
    # The beam (or the samples) multiplies every row: keep the batch's rows near max_tokens.
    max_tokens = max(decode.max_tokens // rows_per_source(decode), 1)
    results: list[list[Hypothesis]] = [[] for _ in src_ids]
    searched = model if decode.incremental else Uncached(model)
    generator = torch.Generator(device).manual_seed(decode.seed) if decode.sampling else None
    with bar(total=len(src_ids), what="decoding", unit="sent") as shown:
        for indices in token_batches(lengths, lengths, max_tokens, rng=None):
            src = padded([src_ids[i] for i in indices], device)
            forced = None
            if prefixes is not None and any(len(prefixes[i]) for i in indices):
                forced = padded([prefixes[i] for i in indices], device)
            with autocast(device):
                recorder = None if history is None else history.within(indices)
                nbest = search(searched, src, decode, generator, forced, recorder)
            for i, hyps in zip(indices.tolist(), nbest, strict=True):
                results[i] = hyps
            shown.update(len(indices))
    model.train(was_training)
    return results


class TorchEngine:
    """A PyTorch model and our search as an engine: decode_ids with the model bound."""

    def __init__(self, model: nn.Module, device: torch.device):
        self.model, self.device = model, device
        self.max_length = model.max_length  # positions it can decode (None: no limit)

    def __call__(
        self,
        src_ids: list[torch.Tensor],
        decode: DecodeConfig,
        prefixes: list[torch.Tensor] | None = None,
        history: BeamHistory | Within | None = None,
    ) -> list[list[Hypothesis]]:
        return decode_ids(self.model, src_ids, decode, self.device, prefixes, history)

    def attention_names(self) -> list[str]:
        """The names of the maps attention() gives (none for a model without attention)."""
        probe = torch.tensor([[4, 2]], device=self.device)  # any source; only names are read
        with torch.no_grad():
            return list(self.model.attention_maps(probe, probe))

    def attention(self, src_ids: torch.Tensor, hyp: list[int]) -> dict[str, torch.Tensor]:
        """Every attention map along hyp: name -> (heads, len(hyp) + 1, len(src_ids))."""
        return attention_along(self.model, src_ids, hyp, self.device)


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
