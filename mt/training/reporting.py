"""What a training tells its user: log lines, TensorBoard curves, samples and attention
images, and results.json. Only rank 0 reports."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter

from mt.common.runtime import describe_device, training_precision
from mt.config.checks import parse
from mt.config.schema import Config
from mt.config.store import to_plain_dict
from mt.evaluation.results import write_results_file
from mt.training import distributed
from mt.training.state import Progress

log = logging.getLogger("mt")


@dataclass
class Window:
    """Loss, tokens and seconds of the steps since the last log line."""

    loss: torch.Tensor | float = 0.0  # this rank's summed loss, on the device
    tokens: int = 0  # all ranks'
    seconds: float = 0.0
    steps: int = 0


class Reporter:
    """TensorBoard and log output of one run (rank 0's)."""

    def __init__(self, run_dir: Path, first_step: int):
        # A resumed run replaces the curves past its checkpoint, which a crash left behind. A
        # fresh run purges nothing: a purge marker at step 1 would also drop a later file's
        # steps when TensorBoard reads the files in another order (same-second names sort
        # by a counter, as text: ...9 after ...10).
        purge = first_step if first_step > 1 else None
        self.writer = SummaryWriter(str(run_dir / "tb"), purge_step=purge)

    def train_step(
        self,
        step: int,
        epoch: int,
        loss: float,
        lr: float,
        grad_norm: float,
        tps: float,
        eta: float,
        tokens: int,
    ) -> None:
        """One training log line and its curves (loss, lr, gradient norm, tokens/s, and the
        target tokens trained so far: with its events' wall times, the loop's throughput)."""
        for tag, value in (
            ("train/loss", loss),
            ("train/lr", lr),
            ("train/grad_norm", grad_norm),
            ("train/tokens_per_sec", tps),
            ("train/target_tokens", tokens),
        ):
            self.writer.add_scalar(tag, value, step)
        log.info(
            "step %6d | epoch %3d | loss %6.3f | lr %.2e | %6.0f tok/s | eta %s",
            step,
            epoch,
            loss,
            lr,
            tps,
            duration(eta),
        )

    def validation(
        self,
        step: int,
        loss: float,
        scores: dict,
        samples: str,
        images: dict[str, np.ndarray],
        improved: bool,
    ) -> None:
        """The validation's log line, curves, sample translations and attention images."""
        ppl = math.exp(min(loss, 50))
        for tag, value in (
            ("valid/loss", loss),
            ("valid/ppl", ppl),
            ("valid/bleu", scores["bleu"]),
            ("valid/chrf", scores["chrf"]),
            *direction_curves(scores),
        ):
            self.writer.add_scalar(tag, value, step)
        self.writer.add_text("valid/samples", samples, step)
        for tag, image in images.items():
            self.writer.add_image(tag, image, step, dataformats="HWC")
        self.writer.flush()
        log.info(
            "valid step %d | loss %.3f | ppl %.2f | BLEU %.2f | chrF %.2f%s",
            step,
            loss,
            ppl,
            scores["bleu"],
            scores["chrf"],
            " | new best" if improved else "",
        )
        for line in direction_lines("valid", scores):
            log.info(line)

    def close(self) -> None:
        self.writer.close()


def duration(seconds: float) -> str:
    """hh:mm:ss, with the days before it when there are any: "1d 02:42:00"."""
    days, rest = divmod(round(seconds), 86400)
    clock = f"{rest // 3600:02d}:{rest // 60 % 60:02d}:{rest % 60:02d}"
    return f"{days}d {clock}" if days else clock


# The first log lines come early, whatever log_every is: a sign of life within seconds, and
# TensorBoard's first points.
EARLY_STEPS = (1, 10)


def log_due(step: int, log_every: int) -> bool:
    """Whether this step closes a log window: every log_every steps, and the early ones."""
    return step % log_every == 0 or (step < log_every and step in EARLY_STEPS)


def into_log_file(message: str) -> None:
    """message into the run's log file (Hydra's train.log) alone: the terminal gets it once,
    as the command's last line."""
    record = log.makeRecord(log.name, logging.INFO, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def direction_lines(split: str, scores: dict) -> list[str]:
    """A multilingual run's scores, a line per direction ("test de-fr (zero-shot) | ...")."""
    lines = []
    for name, each in scores.get("directions", {}).items():
        unseen = " (zero-shot)" if name in scores["zero_shot"] else ""
        lines.append(
            f"{split} {name}{unseen} | BLEU {each['bleu']:.2f} | chrF {each['chrf']:.2f} | "
            f"{each['percent_in_target']:.1f}% in {parse(name)[1]}"
        )
    return lines


# A multilingual run's test scores add each direction's and the zero-shot ones' names. The
# test score (each direction's, for a multilingual run) adds its scores by source length and
# its word F-measure by training frequency.
TEST_KEYS = (
    *("bleu", "chrf", "bleu_lc", "signature", "directions", "zero_shot"),
    *("by_length", "word_f_by_frequency"),
)


def direction_curves(scores: dict) -> list[tuple[str, float]]:
    """valid/bleu/de-en and valid/chrf/de-en for each direction of a multilingual run."""
    return [
        (f"valid/{metric}/{name}", each[metric])
        for name, each in scores.get("directions", {}).items()
        for metric in ("bleu", "chrf")
    ]


def run_results(
    config: Config,
    model: str,
    scores: dict,
    progress: Progress,
    params: int,
    device,
    wall: float,
    parent: dict | None = None,
) -> dict:
    """What results.json holds: scores, training progress, and what made them (the commit,
    the resolved config, torch, the hardware and its threads, the parent it started from)."""
    return {
        "model": model,
        "parent": parent,  # trainer.init_from's checkpoint: path, sha256, its run's commit
        "valid": {k: v for k, v in scores["valid"].items() if k in ("bleu", "chrf", "directions")},
        "test": {k: scores["test"][k] for k in TEST_KEYS if k in scores["test"]},
        "selection": scores["selection"],  # the checkpoint and length penalty, chosen on valid
        "final": scores["final"],  # that choice as one file, for every tool (run-relative)
        "leaks": scores["leaks"],  # held-out pairs and sources also in training (evaluation.leaks)
        "best_valid_bleu_greedy": progress.best_bleu,
        "steps": progress.step,
        "epochs": progress.epoch,
        "train_seconds": round(progress.train_seconds, 1),
        "tgt_tokens_per_sec": round(progress.train_tokens / max(progress.train_seconds, 1e-9), 1),
        "params": params,
        "device": str(device),
        "precision": training_precision(device, config.trainer.precision.value),
        "hardware": describe_device(device),
        "world_size": distributed.world_size(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "wall_seconds": round(wall, 1),
        "commit": progress.commits[-1] if progress.commits else None,  # the code that finished it
        "commits": progress.commits,  # every commit it trained under, in order (resumes add)
        "config": to_plain_dict(config),
    }


def write_results(run_dir: Path, results: dict) -> None:
    """results.json; the test scores on stdout, and the reported model's file in the log."""
    write_results_file(run_dir, results)
    test = results["test"]
    print(
        f"test BLEU {test['bleu']:.2f} | chrF {test['chrf']:.2f} | {test['signature']}", flush=True
    )
    for line in direction_lines("test", test):
        print(line, flush=True)
    leaks = results["leaks"]["test"]
    log.info(
        "test pairs also in training: %d of %d (%d after normalising case, punctuation and "
        "spaces); sources alone: %d (%d)",
        leaks["pairs"],
        leaks["sentences"],
        leaks["pairs_normalised"],
        leaks["sources"],
        leaks["sources_normalised"],
    )
    chosen = results["selection"]
    log.info(
        "reported model: %s (%s, length penalty %g, chosen on valid)",
        run_dir / results["final"],
        chosen["checkpoint"],
        chosen["length_penalty"],
    )
