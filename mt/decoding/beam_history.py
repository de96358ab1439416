"""A beam search, recorded: at every step, each candidate the search looked at (the top 2k
extensions of the k live hypotheses), whether it lived on, ended (EOS within the top k) or
was pruned, with its token, its own log-probability, the cumulative log-probability live
hypotheses are ranked by, the length-normalised score finished ones are ranked by, and its
parent; and, if asked, each live hypothesis's top-k next tokens (what the page shows as
alternatives). Recording is off unless a BeamHistory is passed to beam_search; the best path
of the tree is the search's output (Stahlberg & Byrne, 2019: search errors against model
errors), and re-ranking its finished hypotheses at another length penalty is what a fresh
search at that penalty chooses whenever it finishes the same ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from math import inf

import torch

from mt.common.special_ids import EOS_ID
from mt.decoding.search import BeamStep, length_penalty


@dataclass
class Node:
    """One candidate of one step."""

    token: int
    parent: int  # the live hypothesis it extends: its index in the previous step's kept list
    token_log_prob: float  # the model's log-probability of this token after its parent
    log_prob: float  # of the whole hypothesis: what live hypotheses are ranked by
    score: float  # log_prob over the length penalty: what finished ones are ranked by
    fate: str  # "kept" (lives on), "finished" (an EOS within the top k), "pruned"


@dataclass
class Alternative:
    """One of a live hypothesis's most likely next tokens."""

    token: int
    log_prob: float  # the model's log-probability of it after the hypothesis


@dataclass
class Step:
    """One step of one sentence: kept in the order the search keeps them (best first)."""

    kept: list[Node] = field(default_factory=list)
    finished: list[Node] = field(default_factory=list)
    pruned: list[Node] = field(default_factory=list)
    # Per live hypothesis of the step before (the parent index), its top-k next tokens, best
    # first; empty for a parent at -inf and when top_k is 0.
    alternatives: list[list[Alternative]] = field(default_factory=list)


def finite(value: float) -> float | None:
    """value, or None for an infinity (JSON has none)."""
    return value if math.isfinite(value) else None


def node_json(node: Node) -> dict:
    """node as plain data, its infinite scores null."""
    plain = vars(node).copy()
    for key in ("token_log_prob", "log_prob", "score"):
        plain[key] = finite(plain[key])
    return plain


def normalised(log_prob: float, length: int, alpha: float) -> float:
    """log_prob over the length penalty, in float32 as the search computes it (Finished), so
    that a re-ranking breaks ties as the search does."""
    return float(torch.tensor(log_prob, dtype=torch.float32) / length_penalty(length, alpha))


class Within:
    """A part of a history's sentences, as one search sees them: its row i is sentence
    rows[i] of the history (a StepRecorder for beam_search)."""

    def __init__(self, history: BeamHistory, rows: torch.Tensor):
        self.history, self.rows = history, rows

    def within(self, rows) -> Within:
        return Within(self.history, self.rows[torch.as_tensor(rows)])

    def record(self, t, sentence, scores, step, log_probs):
        self.history.record(t, self.rows[sentence.cpu()], scores, step, log_probs)


class BeamHistory:
    """The recorded steps of every sentence of a batch (a StepRecorder for beam_search)."""

    def __init__(self, batch: int, alpha: float, top_k: int = 0):
        self.alpha, self.top_k = alpha, top_k
        self.steps: list[list[Step]] = [[] for _ in range(batch)]

    def record(
        self,
        t: int,
        sentence: torch.Tensor,
        scores: torch.Tensor,
        step: BeamStep,
        log_probs: torch.Tensor,
    ):
        """Step t of the active sentences (sentence: their original indices), whose live
        hypotheses had the log-probabilities scores (active, k) before it and log_probs
        (active * k, vocab) over their next tokens."""
        before = scores.tolist()
        options = self.alternatives(before, log_probs)
        candidates = zip(
            sentence.tolist(),
            step.candidate_scores.tolist(),
            (step.candidate_index // step.vocab).tolist(),
            step.candidate_tokens.tolist(),
            step.alive.tolist(),
            strict=True,
        )
        ended: dict[int, set[int]] = {}
        for a, position in step.ended.tolist():
            ended.setdefault(a, set()).add(position)
        for a, (original, logs, parents, tokens, alive) in enumerate(candidates):
            nodes = [
                Node(
                    token,
                    parent,
                    log - before[a][parent],
                    log,
                    normalised(log, t, self.alpha),
                    "pruned",
                )
                for log, parent, token in zip(logs, parents, tokens, strict=True)
            ]
            # All k kept, in the search's order (a parent's index is its place here), even
            # one at -inf (a sentence with fewer than k possible continuations).
            recorded = Step(kept=[nodes[position] for position in alive], alternatives=options[a])
            for node in recorded.kept:
                node.fate = "kept"
            for position in sorted(ended.get(a, ())):
                nodes[position].fate = "finished"
                recorded.finished.append(nodes[position])
            real = (n for n in nodes if n.fate == "pruned" and n.log_prob > float("-inf"))
            recorded.pruned = list(real)
            self.steps[original].append(recorded)

    def within(self, rows) -> Within:
        """The sentences rows (a search's rows 0, 1, ...) of this history."""
        return Within(self, torch.as_tensor(rows))

    def alternatives(self, before: list[list[float]], log_probs: torch.Tensor):
        """Per active sentence, per live hypothesis, its top_k next tokens (none at -inf)."""
        if not self.top_k:
            return [[] for _ in before]
        k = len(before[0])
        top = log_probs.view(len(before), k, -1).topk(self.top_k, dim=-1)
        values, tokens = top.values.tolist(), top.indices.tolist()
        return [
            [
                [Alternative(tok, lp) for tok, lp in zip(tt, vv, strict=True) if lp > -inf]
                if parent > -inf
                else []
                for parent, tt, vv in zip(live, sentence_tokens, sentence_values, strict=True)
            ]
            for live, sentence_tokens, sentence_values in zip(before, tokens, values, strict=True)
        ]

    def path(self, sentence: int, t: int, node: Node) -> list[int]:
        """The tokens from the first step to node, a candidate of step t (0-based), included."""
        steps = self.steps[sentence]
        tokens = [node.token]
        while t > 0:
            node = steps[t - 1].kept[node.parent]
            tokens.append(node.token)
            t -= 1
        return tokens[::-1]

    def best_path(self, sentence: int, alpha: float | None = None) -> list[int]:
        """The tokens of the best finished hypothesis (EOS left out): the search's own output,
        or with alpha, the finished hypotheses re-ranked at that length penalty."""
        steps = self.steps[sentence]
        ends = [(t, node) for t, step in enumerate(steps) for node in step.finished]
        if alpha is None:
            ranked = [node.score for _, node in ends]
        else:
            ranked = [normalised(node.log_prob, t + 1, alpha) for t, node in ends]
        # index of the max keeps the first of equals, as the search's stable sort does
        t, node = ends[ranked.index(max(ranked))]
        return self.path(sentence, t, node)[:-1]

    def as_json(self, sentence: int) -> list[dict]:
        """The sentence's steps as plain data (for the page and for a file); a kept node at
        -inf (a step with fewer possible tokens than the beam: a forced prefix) has null
        scores, as JSON has no infinity."""
        return [
            {
                "kept": [node_json(node) for node in step.kept],
                "finished": [node_json(node) for node in step.finished],
                "pruned": [node_json(node) for node in step.pruned],
                "alternatives": [
                    [vars(a).copy() for a in options] for options in step.alternatives
                ],
            }
            for step in self.steps[sentence]
        ]

    def vistools(self, sentence: int) -> dict:
        """OpenNMT VisTools' beam-tree shape: per step, the kept hypotheses' tokens, their
        parents' indices and their cumulative log-probabilities (EOS where one finished)."""
        shape = {"predicted_ids": [], "beam_parent_ids": [], "scores": []}
        for step in self.steps[sentence]:
            nodes = step.kept + step.finished
            shape["predicted_ids"].append(
                [EOS_ID if n.fate == "finished" else n.token for n in nodes]
            )
            shape["beam_parent_ids"].append([n.parent for n in nodes])
            shape["scores"].append([finite(n.log_prob) for n in nodes])
        return shape
