"""Greedy search, sampling and batched beam search, written once against the
incremental-decoder contract.

Search never asks which model it has: it calls encode, decode_step and reorder_state only.
Every sentence gets its own length limit (a * |src| + b) and its own stopping decision, so
its output does not depend on the other sentences in the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch

from mt.common.special_ids import BOS_ID, EOS_ID, PAD_ID
from mt.models.contract import Seq2Seq


@dataclass
class Hypothesis:
    tokens: list[int]  # without BOS and EOS
    score: float  # log_prob / length_penalty: what beam search ranks by
    log_prob: float  # model log-probability of tokens + EOS


def length_penalty(length: torch.Tensor | int, alpha: float) -> torch.Tensor | float:
    """GNMT length penalty ((5 + |Y|) / 6) ** alpha (Wu et al., 2016); 1 when alpha = 0."""
    return ((5.0 + length) / 6.0) ** alpha


def length_limits(src_lengths: torch.Tensor, a: float, b: int, cap: int | None) -> torch.Tensor:
    """Per-sentence output limit (EOS included), a * source length + b, never past cap (the
    positions the model has; None: no cap)."""
    limits = (src_lengths * a + b).long().clamp(min=1)
    return limits if cap is None else limits.clamp(max=cap)


def max_lengths(
    src: torch.Tensor, a: float, b: int, cap: int | None, prefix: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-sentence output limits of a padded batch, from the real source lengths. They count
    a forced target prefix too (as CTranslate2's max_decoding_length does), but a prefix
    always fits, with room for one more token."""
    limits = length_limits((src != PAD_ID).sum(dim=1), a, b, cap)
    if prefix is not None:
        limits = torch.maximum(limits, (prefix != PAD_ID).sum(dim=1) + 1)
    return limits


def force_prefix(log_probs: torch.Tensor, prefix: torch.Tensor | None, t: int) -> torch.Tensor:
    """Rows whose target prefix (rows, P; PAD past its end) has a t-th token may only emit
    it, at its model log-prob; the other rows are left as they are."""
    if prefix is None or t > prefix.size(1):
        return log_probs
    wanted = prefix[:, t - 1 : t]
    only = torch.full_like(log_probs, float("-inf")).scatter(1, wanted, log_probs.gather(1, wanted))
    return torch.where(wanted != PAD_ID, only, log_probs)


def force_eos(log_probs: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Rows that reached their length limit may only emit EOS (at its model log-prob)."""
    not_eos = torch.ones(log_probs.size(-1), dtype=torch.bool, device=log_probs.device)
    not_eos[EOS_ID] = False
    return log_probs.masked_fill(rows[:, None] & not_eos, float("-inf"))


# Chooses each row's next token from its log-probabilities: (rows, vocab) -> (rows,).
Pick = Callable[[torch.Tensor], torch.Tensor]


def most_likely(log_probs: torch.Tensor) -> torch.Tensor:
    return log_probs.argmax(dim=-1)


def restricted(logits: torch.Tensor, top_k: int | None, top_p: float) -> torch.Tensor:
    """logits with -inf outside the top_k tokens and outside the nucleus: the fewest most
    likely tokens whose probability reaches top_p (the most likely one always stays)."""
    if top_k is not None and top_k < logits.size(-1):
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        ordered, order = logits.sort(dim=-1, descending=True)
        probs = ordered.softmax(dim=-1)
        above = probs.cumsum(dim=-1) - probs >= top_p  # the better ones already reach top_p
        above[:, 0] = False  # even when top_p rounds to 0 in float32 (1e-300 does)
        outside = torch.zeros_like(above).scatter(-1, order, above)
        logits = logits.masked_fill(outside, float("-inf"))
    return logits


def sampler(top_k: int | None, top_p: float, temperature: float, generator) -> Pick:
    """Draws each next token from the model's distribution at this temperature, restricted
    to the top_k tokens and the top_p nucleus (Fan et al., 2018; Holtzman et al., 2020)."""

    def pick(log_probs: torch.Tensor) -> torch.Tensor:
        logits = restricted(log_probs.float() / temperature, top_k, top_p)
        return torch.multinomial(logits.softmax(dim=-1), 1, generator=generator).squeeze(1)

    return pick


@torch.no_grad()
def greedy_search(
    model: Seq2Seq,
    src: torch.Tensor,
    max_len_a: float,
    max_len_b: int,
    pick: Pick = most_likely,
    prefix: torch.Tensor | None = None,
) -> list[Hypothesis]:
    """One token per step, the most likely unless pick says otherwise, until EOS or the
    length limit, each output starting with its prefix (rows, P; PAD-padded) if given; the
    score is the model's log-probability of the output."""
    batch = src.size(0)
    limits = max_lengths(src, max_len_a, max_len_b, model.max_length, prefix)
    memory, state = model.encode(src), None
    tokens = torch.full((batch,), BOS_ID, dtype=torch.long, device=src.device)
    done = torch.zeros(batch, dtype=torch.bool, device=src.device)
    log_prob = torch.zeros(batch, device=src.device)
    steps = []
    for t in range(1, int(limits.max()) + 1):
        step_log_probs, state = model.decode_step(tokens, memory, state)
        allowed = force_prefix(force_eos(step_log_probs, limits == t), prefix, t)
        tokens = pick(allowed)
        log_prob += allowed.gather(1, tokens[:, None]).squeeze(1).masked_fill(done, 0.0)
        steps.append(tokens.masked_fill(done, PAD_ID))
        done |= tokens == EOS_ID
        if done.all():
            break
    hyps = []
    for row, score in zip(torch.stack(steps, dim=1).tolist(), log_prob.tolist(), strict=True):
        tokens_out = row[: row.index(EOS_ID)]
        hyps.append(Hypothesis(tokens_out, score, score))
    return hyps


def sample_search(
    model: Seq2Seq,
    src: torch.Tensor,
    nbest: int,
    alpha: float,
    max_len_a: float,
    max_len_b: int,
    pick: Pick,
    prefix: torch.Tensor | None = None,
) -> list[list[Hypothesis]]:
    """nbest samples per sentence, each drawn token by token by pick after its prefix,
    ranked as beam search ranks (log-probability over the length penalty), best first."""
    rows = src.repeat_interleave(nbest, dim=0)
    prefix = None if prefix is None else prefix.repeat_interleave(nbest, dim=0)
    drawn = greedy_search(model, rows, max_len_a, max_len_b, pick, prefix)
    ranked = [
        Hypothesis(h.tokens, h.log_prob / length_penalty(len(h.tokens) + 1, alpha), h.log_prob)
        for h in drawn
    ]
    groups = [ranked[i : i + nbest] for i in range(0, len(ranked), nbest)]
    return [sorted(group, key=lambda h: h.score, reverse=True) for group in groups]


@dataclass
class BeamStep:
    """What one beam step chose, for a batch of active sentences with k live hypotheses."""

    scores: torch.Tensor  # (active, k) the live hypotheses' log-probabilities, best first
    rows: torch.Tensor  # (active * k,) the hypothesis each of them extends
    tokens: torch.Tensor  # (active * k,) the token each of them adds
    ended: torch.Tensor  # (E, 2) sentence and candidate of each EOS candidate that ends
    ended_rows: torch.Tensor  # (E,) the hypothesis each of those extends
    ended_scores: torch.Tensor  # (E,) their log-probabilities
    # Every candidate looked at, for a recorded search (mt/decoding/beam_history.py), as the
    # step computed them (nothing more is computed when nothing is recorded): (active, 2k)
    # log-probabilities, their index into (k live hypotheses x vocab), their tokens, and
    # (active, k) which of them live on.
    candidate_scores: torch.Tensor
    candidate_index: torch.Tensor
    candidate_tokens: torch.Tensor
    alive: torch.Tensor
    vocab: int


def beam_step(scores: torch.Tensor, log_probs: torch.Tensor) -> BeamStep:
    """One step of beam search, a pure function: the top 2k extensions of each sentence's k
    live hypotheses (scores (active, k), log_probs (active * k, V)), so that k non-EOS ones
    always remain; the EOS candidates within the top k end, the best k others live on.

    An EOS candidate ends a hypothesis only when it ranks within the top beam of all
    candidates (as in fairseq). Admitting lower-ranked EOS candidates too fills the finished
    list with short hypotheses and stops the search early: on Multi30k that cost 0.8 valid
    BLEU."""
    active, k = scores.shape
    vocab = log_probs.size(-1)
    candidates = (scores.view(-1, 1) + log_probs).view(active, k * vocab)
    top_scores, top_index = candidates.topk(min(2 * k, k * vocab), dim=1)
    origin = top_index // vocab + (torch.arange(active, device=scores.device) * k)[:, None]
    token = top_index % vocab
    is_eos = token == EOS_ID
    ended = (is_eos[:, :k] & (top_scores[:, :k] > float("-inf"))).nonzero()
    live_scores, alive = top_scores.masked_fill(is_eos, float("-inf")).topk(k, dim=1)
    return BeamStep(
        scores=live_scores,
        rows=origin.gather(1, alive).view(-1),
        tokens=token.gather(1, alive).view(-1),
        ended=ended,
        ended_rows=origin[ended[:, 0], ended[:, 1]],
        ended_scores=top_scores[ended[:, 0], ended[:, 1]],
        candidate_scores=top_scores,
        candidate_index=top_index,
        candidate_tokens=token,
        alive=alive,
        vocab=vocab,
    )


class StepRecorder(Protocol):
    """What keeps a beam search's history (mt.decoding.beam_history.BeamHistory)."""

    def record(
        self,
        t: int,
        sentence: torch.Tensor,
        scores: torch.Tensor,
        step: BeamStep,
        log_probs: torch.Tensor,
    ):
        """Step t of the active sentences (their original indices), from scores (active, k)
        and the next tokens' log_probs (active * k, vocab)."""


class Finished:
    """The finished hypotheses of every sentence of a batch, and what stopping needs of them."""

    def __init__(self, batch: int, nbest: int, device: torch.device):
        self.hypotheses: list[list[Hypothesis]] = [[] for _ in range(batch)]
        self.nbest = nbest
        self.count = torch.zeros(batch, dtype=torch.long, device=device)
        # The nbest-th best finished score per sentence: live hypotheses below it cannot matter.
        self.nth = torch.full((batch,), float("-inf"), device=device)

    def add(self, step: BeamStep, t: int, alpha: float, sentence: torch.Tensor, prefixes):
        """The hypotheses step ended at length t (sentence: each active row's original
        sentence; prefixes: each hypothesis's tokens so far), read from the device at once."""
        if step.ended.numel() == 0:
            return
        originals = sentence[step.ended[:, 0]].tolist()
        tokens = prefixes[step.ended_rows, 1:].tolist()
        log_probs = step.ended_scores.tolist()
        scores = (step.ended_scores / length_penalty(t, alpha)).tolist()
        ended = zip(originals, tokens, scores, log_probs, strict=True)
        for original, hyp, score, log_prob in ended:
            self.hypotheses[original].append(Hypothesis(hyp, score, log_prob))
        touched = sorted(set(originals))
        counts = [len(self.hypotheses[i]) for i in touched]
        self.count[touched] = torch.tensor(counts).to(self.count)
        full = [i for i in touched if len(self.hypotheses[i]) >= self.nbest]
        if full:  # the nbest-th best score of each sentence with enough finished
            nth = [sorted((h.score for h in self.hypotheses[i]), reverse=True) for i in full]
            self.nth[full] = torch.tensor([r[self.nbest - 1] for r in nth]).to(self.nth)

    def best(self) -> list[list[Hypothesis]]:
        """Each sentence's nbest finished hypotheses, best first."""
        ranked = (sorted(h, key=lambda h: h.score, reverse=True) for h in self.hypotheses)
        return [hyps[: self.nbest] for hyps in ranked]


@torch.no_grad()
def beam_search(
    model: Seq2Seq,
    src: torch.Tensor,
    beam_size: int,
    alpha: float,
    nbest: int,
    max_len_a: float,
    max_len_b: int,
    prefix: torch.Tensor | None = None,
    history: StepRecorder | None = None,
) -> list[list[Hypothesis]]:
    """The nbest highest-scoring hypotheses per sentence, best first, each starting with
    its prefix (batch, P; PAD-padded) if given; with history, every step recorded into it.

    Each step (beam_step) keeps the best beam that did not end. A sentence is done when it
    has beam finished hypotheses, when no live one can still enter its n-best, or at its
    length limit; done sentences leave the batch.
    """
    batch, k, device = src.size(0), beam_size, src.device
    limits = max_lengths(src, max_len_a, max_len_b, model.max_length, prefix)
    beam_rows = torch.arange(k, device=device)
    memory = model.reorder_state(
        model.encode(src), torch.arange(batch, device=device).repeat_interleave(k)
    )
    state = None
    sentence = torch.arange(batch, device=device)  # original index of each active sentence
    scores = torch.zeros(batch, k, device=device)
    scores[:, 1:] = float("-inf")  # all beams start from the same BOS: keep one of them
    prefixes = torch.full((batch * k, 1), BOS_ID, dtype=torch.long, device=device)
    finished = Finished(batch, nbest, device)

    for t in range(1, int(limits.max()) + 1):
        log_probs, state = model.decode_step(prefixes[:, -1], memory, state)
        log_probs = force_eos(log_probs, (limits[sentence] == t).repeat_interleave(k))
        if prefix is not None and t <= prefix.size(1):  # only while some prefix is forced
            log_probs = force_prefix(log_probs, prefix[sentence].repeat_interleave(k, dim=0), t)
        step = beam_step(scores, log_probs)
        if history is not None:  # off by default: recording reads the device every step
            history.record(t, sentence, scores, step, log_probs)
        finished.add(step, t, alpha, sentence, prefixes)
        scores = step.scores
        prefixes = torch.cat([prefixes[step.rows], step.tokens[:, None]], dim=1)
        state = model.reorder_state(state, step.rows)

        # No live hypothesis can enter the n-best once even its best possible normalised
        # score (current log-prob, the largest length penalty) falls below the nbest-th.
        limit = limits[sentence]
        bound = scores[:, 0] / length_penalty(limit.float(), alpha)
        done = (limit <= t) | (finished.count[sentence] >= k) | (finished.nth[sentence] >= bound)
        if done.all():
            break
        if done.any():
            keep = (~done).nonzero().squeeze(1)
            keep_rows = (keep[:, None] * k + beam_rows).view(-1)
            sentence, scores, prefixes = sentence[keep], scores[keep], prefixes[keep_rows]
            memory = model.reorder_state(memory, keep_rows)
            state = model.reorder_state(state, keep_rows)

    return finished.best()
