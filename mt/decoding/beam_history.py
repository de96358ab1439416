"""A beam search, recorded: at every step, each candidate the search looked at (the top 2k
extensions of the k live hypotheses), whether it lived on, ended (EOS within the top k) or
was pruned, with its token, its own log-probability, the cumulative log-probability live
hypotheses are ranked by, the length-normalised score finished ones are ranked by, and its
parent. Recording is off unless a BeamHistory is passed to beam_search; the best path of the
tree is the search's output (Stahlberg & Byrne, 2019: search errors against model errors).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

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
class Step:
    """One step of one sentence: kept in the order the search keeps them (best first)."""

    kept: list[Node] = field(default_factory=list)
    finished: list[Node] = field(default_factory=list)
    pruned: list[Node] = field(default_factory=list)


class BeamHistory:
    """The recorded steps of every sentence of a batch (a StepRecorder for beam_search)."""

    def __init__(self, batch: int, alpha: float):
        self.alpha = alpha
        self.steps: list[list[Step]] = [[] for _ in range(batch)]

    def record(self, t: int, sentence: torch.Tensor, scores: torch.Tensor, step: BeamStep):
        """Step t of the active sentences (sentence: their original indices), whose live
        hypotheses had the log-probabilities scores (active, k) before it."""
        before = scores.tolist()
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
        penalty = length_penalty(t, self.alpha)
        for a, (original, logs, parents, tokens, alive) in enumerate(candidates):
            nodes = [
                Node(token, parent, log - before[a][parent], log, log / penalty, "pruned")
                for log, parent, token in zip(logs, parents, tokens, strict=True)
            ]
            # All k kept, in the search's order (a parent's index is its place here), even
            # one at -inf (a sentence with fewer than k possible continuations).
            recorded = Step(kept=[nodes[position] for position in alive])
            for node in recorded.kept:
                node.fate = "kept"
            for position in sorted(ended.get(a, ())):
                nodes[position].fate = "finished"
                recorded.finished.append(nodes[position])
            real = (n for n in nodes if n.fate == "pruned" and n.log_prob > float("-inf"))
            recorded.pruned = list(real)
            self.steps[original].append(recorded)

    def best_path(self, sentence: int) -> list[int]:
        """The tokens of the best finished hypothesis (EOS left out), walked back through its
        parents: the search's own output."""
        steps = self.steps[sentence]
        ends = [(node.score, t) for t, step in enumerate(steps) for node in step.finished]
        _, t = max(ends, key=lambda end: end[0])  # max keeps the first of equals, as the search
        node = max(steps[t].finished, key=lambda n: n.score)
        tokens = []
        while t > 0:
            node = steps[t - 1].kept[node.parent]
            tokens.append(node.token)
            t -= 1
        return tokens[::-1]

    def as_json(self, sentence: int) -> list[dict]:
        """The sentence's steps as plain data (for the page and for a file)."""
        return [asdict(step) for step in self.steps[sentence]]

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
            shape["scores"].append([n.log_prob for n in nodes])
        return shape
