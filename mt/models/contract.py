"""The incremental-decoder contract that search and training rely on, for every architecture.

    logits = model(src, tgt_in)                              teacher-forced, (B, T, V)
    memory = model.encode(src)                               once per sentence
    log_probs, state = model.decode_step(prev, memory, state)   one token per row; state=None first
    state = model.reorder_state(state, index)                keep/duplicate rows (beams, finished)
    maps = model.attention_maps(src, tgt_in)                 {name: (B, heads, T, S)}, {} if none
    log_probs = model.decode_prefix(prefix, memory)          no cache: the whole prefix, (B, V)
    model.max_length                                         longest source or output, or None

Memory and state are nested dicts/lists/tuples of batch-first tensors, so selecting rows is
the same operation for every model: `select_rows`.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

State = Any  # nested dict / list / tuple of batch-first tensors (or None)


class Seq2Seq(Protocol):
    max_length: int | None  # positions the model can encode or decode; None: no limit

    def __call__(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor: ...

    def encode(self, src: torch.Tensor) -> State: ...

    def decode_step(
        self, prev_tokens: torch.Tensor, memory: State, state: State
    ) -> tuple[torch.Tensor, State]: ...

    def reorder_state(self, state: State, index: torch.Tensor) -> State: ...

    def attention_maps(
        self, src: torch.Tensor, tgt_in: torch.Tensor
    ) -> dict[str, torch.Tensor]: ...

    def decode_prefix(self, prefix: torch.Tensor, memory: State) -> torch.Tensor: ...


class Uncached:
    """A model seen through the contract with its decoder cache switched off: each step feeds
    the whole prefix again (as toolkits without a cache do). For measuring what the cache buys
    and checking that it changes nothing; the state is just the prefix."""

    def __init__(self, model: Seq2Seq):
        self.model = model
        self.max_length = model.max_length

    def encode(self, src: torch.Tensor) -> State:
        return self.model.encode(src)

    def decode_step(self, prev_tokens: torch.Tensor, memory: State, state: State):
        prefix = (
            prev_tokens[:, None] if state is None else torch.cat([state, prev_tokens[:, None]], 1)
        )
        return self.model.decode_prefix(prefix, memory), prefix

    def reorder_state(self, state: State, index: torch.Tensor) -> State:
        return select_rows(state, index)


def select_rows(tree: State, index: torch.Tensor) -> State:
    """Index every tensor in a nested structure along its first (batch) dimension."""
    if isinstance(tree, torch.Tensor):
        return tree.index_select(0, index)
    if isinstance(tree, dict):
        return {key: select_rows(value, index) for key, value in tree.items()}
    if isinstance(tree, list | tuple):
        return type(tree)(select_rows(value, index) for value in tree)
    return tree
