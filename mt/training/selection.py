"""The model a run reports, chosen on the valid split only: best.pt or the mean of the newest
validation snapshots (trainer.average_last), and the length penalty
(trainer.length_penalties), both by beam-search BLEU on valid. The test split is then decoded
once, with that choice, and the choice is written as one file, final.pt: the chosen weights
with the chosen length penalty in its config, so every tool decodes it as the run did."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mt.common.checkpoint import load_checkpoint, save_checkpoint, snapshots
from mt.common.files import write_text
from mt.config.schema import Config, DataConfig
from mt.config.store import to_plain_dict
from mt.data.corpus import Corpus, Split
from mt.data.readers import training_pairs
from mt.data.tokenizer import Tokenizer
from mt.evaluation.leaks import leak_audit
from mt.evaluation.scores import breakdowns, words
from mt.training.averaging import average
from mt.training.validation import decode_split

log = logging.getLogger("mt")

AVERAGED = "averaged.pt"
FINAL = "final.pt"  # the reported model, with the decode settings it was reported with


@dataclass
class Choice:
    checkpoint: str  # a file of the run's checkpoints directory
    length_penalty: float
    valid_bleu: dict[str, float]  # every candidate's valid BLEU, "best.pt, lp 1.0": 40.1


def candidate_weights(checkpoints: Path, average_last: int) -> dict[str, dict]:
    """Checkpoint name -> weights: best.pt, and with average_last=N the mean of the N newest
    snapshots, kept as averaged.pt for mt.evaluate and mt.export."""
    found = {"best.pt": load_checkpoint(checkpoints / "best.pt")["model"]}
    newest = snapshots(checkpoints)[-average_last:] if average_last else []
    if len(newest) > 1:  # the mean of one snapshot is that snapshot
        averaged = average(newest)
        save_checkpoint(averaged, checkpoints / AVERAGED)
        found[AVERAGED] = averaged["model"]
    return found


def choose(
    model: nn.Module,
    tokenizer: Tokenizer,
    valid: Split,
    config: Config,
    checkpoints: Path,
    device: torch.device,
) -> Choice:
    """The candidate and length penalty with the highest valid BLEU (the first on a tie);
    model is left holding the chosen weights."""
    penalties = config.trainer.length_penalties or [config.decode.length_penalty]
    weights = candidate_weights(checkpoints, config.trainer.average_last)
    if len(weights) == 1 and len(penalties) == 1:  # nothing to choose
        model.load_state_dict(weights["best.pt"])
        return Choice("best.pt", penalties[0], {})
    scores: dict[tuple[str, float], float] = {}
    count = len(weights) * len(penalties)
    log.info("choosing the reported model on valid: %d beam-search decodings of valid", count)
    for name, state in weights.items():
        model.load_state_dict(state)
        for penalty in penalties:
            decode = replace(config.decode, length_penalty=penalty)
            scores[name, penalty] = decode_split(model, tokenizer, valid, decode, device)[0]["bleu"]
            log.info("valid BLEU %.2f: %s, length penalty %g", scores[name, penalty], name, penalty)
    name, penalty = max(scores, key=scores.get)  # max keeps the first of equals
    model.load_state_dict(weights[name])
    return Choice(name, penalty, {f"{n}, lp {p}": round(b, 2) for (n, p), b in scores.items()})


def save_final(model: nn.Module, config: Config, checkpoints: Path, choice: Choice) -> Path:
    """The reported model as one checkpoint: model's weights, its run's config with the chosen
    length penalty as decode.length_penalty, and the choice itself (no optimizer: it is for
    decoding, not resuming)."""
    best = load_checkpoint(checkpoints / "best.pt")
    decode = replace(config.decode, length_penalty=choice.length_penalty)
    payload = {
        "config": to_plain_dict(replace(config, decode=decode)),
        "tokenizer": best["tokenizer"],
        "languages": best.get("languages"),
        "model": model.state_dict(),
        "progress": best["progress"],
        "selection": asdict(choice),
    }
    save_checkpoint(payload, checkpoints / FINAL)
    return checkpoints / FINAL


def hypothesis_files(split: Split, hyps: list[str], tgt_lang: str) -> dict[str, list[str]]:
    """File suffix -> lines: the target language's, or one per direction (multilingual)."""
    if not split.directions:
        return {tgt_lang: hyps}
    return {
        name: [hyps[i] for i in np.flatnonzero(split.sources == k)]
        for k, name in enumerate(split.directions)
    }


def training_text_audit(data: DataConfig, corpus: Corpus) -> tuple[dict, Counter]:
    """One pass over the training text: the leak audit of valid and test, and how often
    each target word (13a) occurs."""
    counts: Counter = Counter()

    def counted():
        for source, target in training_pairs(data):
            counts.update(words(target))
            yield source, target

    held_out = {
        name: list(zip(split.src_text, split.tgt_text, strict=True))
        for name, split in (("valid", corpus.valid), ("test", corpus.test))
    }
    return leak_audit(counted(), held_out), counts


def direction_rows(split: Split, direction: str | None) -> list[int]:
    """The split's sentence indices of one direction (None: all of a one-direction split)."""
    if direction is None:
        return list(range(len(split.tgt_text)))
    return np.flatnonzero(split.sources == split.directions.index(direction)).tolist()


def final_test(
    model: nn.Module, corpus: Corpus, config: Config, checkpoints: Path, device: torch.device
) -> dict:
    """Choose the reported model on valid, save it as final.pt, then decode valid and test
    with it (beam search): their scores, the choice, and {valid,test}.hyp.<lang> beside the
    checkpoints directory; and how much of valid and test the training data holds."""
    choice = choose(model, corpus.tokenizer, corpus.valid, config, checkpoints, device)
    final = save_final(model, config, checkpoints, choice)
    decode = replace(config.decode, length_penalty=choice.length_penalty)
    results = {"selection": asdict(choice), "final": str(final.relative_to(checkpoints.parent))}
    results["leaks"], counts = training_text_audit(config.data, corpus)
    for name, split in (("valid", corpus.valid), ("test", corpus.test)):
        log.info("decoding %s with the reported model (%d sentences)", name, len(split.tgt_text))
        scores, hyps = decode_split(model, corpus.tokenizer, split, decode, device)
        for suffix, lines in hypothesis_files(split, hyps, config.data.tgt_lang).items():
            text = "".join(h + "\n" for h in lines)
            write_text(checkpoints.parent / f"{name}.hyp.{suffix}", text)
        if name == "test":  # where the test score comes from, per direction if several
            per = scores.get("directions") or {None: scores}
            for direction, found in per.items():
                kept = direction_rows(split, direction)
                found.update(
                    breakdowns(
                        [split.src_text[i] for i in kept],
                        [hyps[i] for i in kept],
                        [split.tgt_text[i] for i in kept],
                        counts,
                    )
                )
        results[name] = scores
    return results
