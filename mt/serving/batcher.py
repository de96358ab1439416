"""Cross-request batching: one worker thread per served model decodes the sentences of
concurrent requests together, in shared batches of at most batch_tokens (decoder rows x
source tokens, as decode.max_tokens counts them in mt.translate).

A request is cut into pieces of one batch each, and the worker takes the requests in turn,
one piece of each per batch: so a small request waits for at most one batch of a large one,
never for all of it. Requests with other decode settings (a beam, a length penalty) or
another target language cannot share a batch; they take their turn. Sampling requests are
decoded whole and alone, so that a seed gives the samples mt.translate gives. With batching
off, the worker decodes one whole request at a time: the path this module replaced, kept
for comparison (scripts/load.py).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from mt.config.schema import DecodeConfig
from mt.decoding.inference import rows_per_source
from mt.decoding.translator import Translator

log = logging.getLogger("mt")


class Busy(Exception):
    """The queue is full: the request is refused (503) rather than left waiting."""


@dataclass
class Ticket:
    """One request in the queue: its sentences, cut into pieces (lists of indices)."""

    sentences: list[str]
    costs: list[int]  # each sentence's share of a batch
    decode: DecodeConfig
    tgt_lang: str | None  # a multilingual model's language to translate into
    pieces: deque[list[int]]
    finish: Callable[[list], Any]  # the request's results in, its answer out (on the worker)
    future: Future = field(default_factory=Future)
    found: list = field(init=False)
    left: int = field(init=False)  # sentences not yet decoded

    def __post_init__(self) -> None:
        self.found = [None] * len(self.sentences)
        self.left = len(self.sentences)

    def cost(self, piece: list[int]) -> int:
        return sum(self.costs[k] for k in piece)


def run_job(job: Callable[[], Any], future: Future) -> None:
    """job's result, or its error, into future."""
    try:
        future.set_result(job())
    except Exception as error:  # one failed job fails its request, not the server
        future.set_exception(error)


def pieces(costs: list[int], budget: int) -> deque[list[int]]:
    """Consecutive sentences grouped so that each group's cost stays within budget (a
    sentence costing more than budget makes a group of its own)."""
    groups: deque[list[int]] = deque([[]])
    spent = 0
    for k, cost in enumerate(costs):
        if groups[-1] and spent + cost > budget:
            groups.append([])
            spent = 0
        groups[-1].append(k)
        spent += cost
    return groups


class Batcher:
    """The queue and worker thread of one served model."""

    def __init__(
        self, translator: Translator, batch_tokens: int, max_queued: int, batching: bool = True
    ):
        self.translator, self.batch_tokens = translator, batch_tokens
        self.max_queued, self.batching = max_queued, batching
        self.tickets: deque[Ticket] = deque()
        # Other work on the model (a recorded search), each counted as one sentence queued.
        self.jobs: deque[tuple[Callable[[], Any], Future]] = deque()
        self.queued = 0  # sentences waiting, in every ticket and job
        self.ready = threading.Condition()
        threading.Thread(target=self.work, daemon=True, name="mt-batcher").start()

    def encode(self, sentences: list[str]) -> list[list[int]]:
        return self.translator.tokenizer.encode_src(sentences)

    def cost(self, sentences: list[str], decode: DecodeConfig) -> list[int]:
        """Each sentence's share of a batch: its source subwords (with EOS) times its rows."""
        rows = rows_per_source(decode)
        return [
            rows * (len(ids) + 1) if sentence.strip() else 0
            for sentence, ids in zip(sentences, self.encode(sentences), strict=True)
        ]

    def submit(
        self,
        sentences: list[str],
        decode: DecodeConfig,
        finish: Callable[[list], Any],
        tgt_lang: str | None = None,
    ) -> Future:
        """Queue sentences; the future holds finish(their search results, in order)."""
        costs = self.cost(sentences, decode)
        whole = not self.batching or decode.sampling
        cut = deque([list(range(len(sentences)))]) if whole else pieces(costs, self.batch_tokens)
        with self.ready:
            self.make_room(len(sentences))
            ticket = Ticket(sentences, costs, decode, tgt_lang, cut, finish)
            self.tickets.append(ticket)
            self.queued += len(sentences)
            self.ready.notify()
        return ticket.future

    def run(self, job: Callable[[], Any]) -> Future:
        """Queue job, a call of its own on the model, for the worker (which alone runs the
        model); the future holds what it returns."""
        future: Future = Future()
        with self.ready:
            self.make_room(1)
            self.jobs.append((job, future))
            self.queued += 1
            self.ready.notify()
        return future

    def make_room(self, sentences: int) -> None:
        """(Called holding the lock.) Refuses sentences more past max_queued."""
        if self.queued + sentences > self.max_queued:
            raise Busy(
                f"{self.queued} sentences are queued for this model, it takes "
                f"{self.max_queued}: try again shortly"
            )

    def next_batch(self) -> list[tuple[Ticket, list[int]]]:
        """(Called holding the lock.) The first ticket's next piece and, while there is room,
        the next piece of each later ticket with the same settings; the tickets served go to
        the back of the queue, so each gets its turn."""
        head = self.tickets[0]
        batch = [(head, head.pieces.popleft())]
        mergeable = self.batching and not head.decode.sampling
        room = self.batch_tokens - head.cost(batch[0][1])
        for ticket in list(self.tickets)[1:] if mergeable else []:
            if (ticket.decode, ticket.tgt_lang) != (head.decode, head.tgt_lang):
                continue
            spent = ticket.cost(ticket.pieces[0])
            if spent > room:
                break
            batch.append((ticket, ticket.pieces.popleft()))
            room -= spent
        served = {id(ticket) for ticket, _ in batch}
        waiting = [t for t in self.tickets if id(t) not in served]
        self.tickets = deque(waiting + [t for t, _ in batch if t.pieces])
        self.queued -= sum(len(piece) for _, piece in batch)
        return batch

    def work(self) -> None:
        """The worker: forever, the next batch, decoded, and the requests it completes
        answered."""
        while True:
            with self.ready:
                while not self.tickets and not self.jobs:
                    self.ready.wait()
                job = self.jobs.popleft() if self.jobs else None
                self.queued -= job is not None
                batch = None if job else self.next_batch()
            if job:
                run_job(*job)
                continue
            try:
                self.decode(batch)
            except Exception as error:  # one bad batch fails its requests, not the server
                log.exception("decoding failed")
                self.fail(batch, error)

    def decode(self, batch: list[tuple[Ticket, list[int]]]) -> None:
        """Search every sentence of batch at once and hand each its result."""
        head = batch[0][0]
        sentences = [ticket.sentences[k] for ticket, piece in batch for k in piece]
        found = iter(self.translator.search(sentences, head.decode, tgt_lang=head.tgt_lang))
        for ticket, piece in batch:
            for k in piece:
                ticket.found[k] = next(found)
            ticket.left -= len(piece)
            if ticket.left == 0:
                ticket.future.set_result(ticket.finish(ticket.found))

    def fail(self, batch: list[tuple[Ticket, list[int]]], error: Exception) -> None:
        """The requests of a failed batch end with error; their other pieces are dropped."""
        with self.ready:
            failed = {id(ticket) for ticket, _ in batch}
            for ticket in [t for t in self.tickets if id(t) in failed]:
                self.queued -= sum(len(piece) for piece in ticket.pieces)
            self.tickets = deque(t for t in self.tickets if id(t) not in failed)
        for ticket, _ in batch:
            if not ticket.future.done():
                ticket.future.set_exception(error)
