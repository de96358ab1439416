"""One training loop for every model: batches, optimisation, checkpoints, validation, test."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import replace
from datetime import timedelta
from functools import cached_property
from pathlib import Path

import torch

from mt.common.checkpoint import keep_snapshot, load_checkpoint, save_checkpoint
from mt.common.errors import Stopped
from mt.common.files import remove_stale_temporaries
from mt.common.heap import keep_freed_memory
from mt.common.progress import bar_with_logs
from mt.common.runtime import pick_device, set_cpu_threads, source_commit, training_precision
from mt.config.checks import trainer_warnings
from mt.config.schema import Config
from mt.data.batches import train_batches
from mt.data.concat import joined_split
from mt.data.corpus import Corpus, load_corpus
from mt.data.directions import epoch_weights, source_marks
from mt.data.feed import updates
from mt.data.languages import held_out_profiles
from mt.models import build_model, count_parameters, model_name
from mt.training import distributed
from mt.training.heatmap import attention_images
from mt.training.parent import freeze, lineage, start_from
from mt.training.reporting import (
    Reporter,
    Window,
    into_log_file,
    log_due,
    run_results,
    write_results,
)
from mt.training.schedule import eta_seconds, limit_reached
from mt.training.selection import final_test
from mt.training.signals import StopRequests
from mt.training.state import (
    Progress,
    TrainState,
    checkpoint_payload,
    keep_batching,
    random_state,
    restore,
)
from mt.training.update import Update, optimizer_and_schedule, step_plan, wrapped
from mt.training.validation import decode_split, samples_markdown, split_loss

log = logging.getLogger("mt")


class Trainer:
    def __init__(self, config: Config, run_dir: Path):
        self.started = time.monotonic()
        last = run_dir / "checkpoints" / "last.pt"
        resumed = load_checkpoint(last) if config.trainer.resume else None  # once: it can be GBs
        self.parent, config = lineage(config, last, resumed)
        self.config, self.run_dir, settings = config, run_dir, config.trainer
        set_cpu_threads(settings.num_threads)
        timeout = timedelta(seconds=settings.ddp_timeout_s)
        self.device = distributed.init(pick_device(settings.device), timeout)
        self.precision = training_precision(self.device, settings.precision.value)
        if self.device.type == "cpu" and settings.keep_freed_memory:
            keep_freed_memory()
        # Dropout differs between ranks; the weights do not: DDP copies rank 0's at the start.
        torch.manual_seed(settings.seed + distributed.rank())
        # Each machine's first process builds a missing data cache while the others wait for
        # it on the file system, not in a collective that could time out.
        tokenizer = self.parent.tokenizer if self.parent else None
        build = distributed.local_rank() == 0
        self.corpus: Corpus = load_corpus(config.data, build, tokenizer)
        self.model = build_model(config.model, *self.corpus.tokenizer.sizes()).to(self.device)
        self.plan = step_plan(self.device, settings, config.data, self.precision)
        optimizer, scheduler = optimizer_and_schedule(self.model, settings, self.device)
        args = (optimizer, scheduler, settings, self.device, self.precision)
        self.update = Update(self.model, wrapped(self.model, self.device, self.plan), *args)
        progress = Progress(commits=[source_commit()])  # read now: the code that runs
        self.state = TrainState(self.model, optimizer, scheduler, progress)
        self.checkpoints = run_dir / "checkpoints"
        if distributed.is_main() and self.checkpoints.is_dir():
            remove_stale_temporaries(self.checkpoints)  # saves a kill interrupted
        if resumed:
            restore(last, resumed, self.tokenizer_models, self.state, self.device, config)
        elif self.parent:
            start_from(self.parent, self.state, config)
        keep_batching(self.progress, self.plan.fixed_shapes)
        freeze(self.model, settings.freeze)
        for warning in trainer_warnings(settings) if distributed.is_main() else []:
            log.warning("warning: %s", warning)
        # Rank 0 alone writes TensorBoard, checkpoints and results.
        first_step = self.progress.step + 1
        self.reporter = Reporter(run_dir, first_step) if distributed.is_main() else None
        self.stop_requests = StopRequests()
        self.interrupted = False  # a stop signal reached this rank or another

    @property
    def progress(self) -> Progress:
        return self.state.progress

    @property
    def tokenizer_models(self) -> dict:
        return self.corpus.tokenizer.to_dict()

    @cached_property
    def text_side(self) -> dict:
        """What checkpoints keep of the text: the tokenizer, the languages' trigram profiles
        (from the held-out text) that the tools check their inputs against, and the parent
        the tokenizer came from (trainer.init_from), which a resumed run takes it from."""
        profiles = held_out_profiles(self.corpus.valid.language_texts(self.config.data))
        parent = self.parent.record() if self.parent else None
        return {"tokenizer": self.tokenizer_models, "languages": profiles, "parent": parent}

    # ------------------------------------------------------------ training

    def train_step(self, batches: list) -> tuple[torch.Tensor, int, torch.Tensor]:
        """One optimizer update (mt.training.update.Update)."""
        return self.update(batches)

    def agreed_stop(self) -> str | None:
        """The same decision on every rank: rank 0's limits (their clocks differ, their steps
        must not), or a stop signal that any rank received."""
        reason = limit_reached(self.config.trainer, self.progress)
        signalled = self.stop_requests.received is not None
        if distributed.active():
            main_stops, signalled = distributed.sum_all(
                [float(distributed.is_main() and reason is not None), float(signalled)],
                self.device,
            )
            reason = (reason or "rank 0 stopped") if main_stops else None
        if signalled:
            self.interrupted = True
            received = self.stop_requests.received
            return f"stopped by {received.name if received else 'a signal to another rank'}"
        return reason

    def fit(self) -> str:
        """Train until a limit or a stop signal; checkpoints along the way."""
        settings, progress, data = self.config.trainer, self.progress, self.config.data
        world = distributed.world_size()
        window = Window()
        main, total = distributed.is_main(), settings.max_steps
        steps = bar_with_logs(total, "training", "step", progress.step, show=main)
        with self.stop_requests, steps as self.steps_shown:
            reason = self.agreed_stop()
            while reason is None:
                concat = (data.concat_prob, data.concat_max, data.max_len)
                marks = source_marks(data)
                split = joined_split(
                    self.corpus.train, concat, settings.seed, progress.epoch, marks
                )
                # Every rank shuffles the same way, then takes its own share of the batches.
                batches = distributed.shard(
                    train_batches(
                        split,
                        data.max_tokens,
                        data.max_len,
                        settings.seed,
                        progress.epoch,
                        data.max_length_ratio,
                        epoch_weights(data, self.corpus.train.sources),
                        src_marks=marks,
                        fixed_shapes=progress.fixed_shapes,
                    )
                )
                done = progress.batch_in_epoch // world  # progress counts batches of all ranks
                chunks = [
                    batches[i : i + settings.accumulate]
                    for i in range(done, len(batches), settings.accumulate)
                ]
                for update in self.feed(split, chunks):
                    self.run_step(update, window)
                    done += len(update)
                    progress.batch_in_epoch = done * world
                    if log_due(progress.step, settings.log_every):
                        self.log_window(window, len(batches), done)
                        window = Window()
                    self.checkpoint_if_due()
                    reason = self.agreed_stop()
                    if reason is not None:
                        break
                if done >= len(batches):
                    progress.epoch += 1
                    progress.batch_in_epoch = 0
                    reason = self.agreed_stop()
        self.finish(reason)
        return reason

    def feed(self, split, chunks: list) -> Iterable[list]:
        """The padded batches of each update, prepared ahead on a GPU (data.loader_workers)."""
        workers = self.config.data.loader_workers
        if workers is None:
            workers = 1 if self.device.type == "cuda" else 0  # on a CPU it would steal a core
        pin = self.device.type == "cuda"
        return updates(split, chunks, workers, pin)

    def run_step(self, update: list, window: Window) -> None:
        """One update on its padded batches, counted in progress and the log window."""
        progress = self.progress
        start = time.perf_counter()
        loss, tokens, grad_norm = self.train_step(update)
        seconds = time.perf_counter() - start
        progress.step += 1
        progress.train_seconds += seconds
        progress.train_tokens += tokens
        window.loss, window.tokens = window.loss + loss, window.tokens + tokens
        window.seconds, window.steps = window.seconds + seconds, window.steps + 1
        self.last_grad_norm = grad_norm
        self.steps_shown.update()

    def log_window(self, window: Window, batches_per_epoch: int, done: int) -> None:
        """The window's loss per target token over all ranks (every rank joins the sum),
        logged by rank 0: the one place the training loop reads device values."""
        (loss,) = distributed.sum_all([float(window.loss)], self.device)
        if not distributed.is_main():
            return
        progress = self.progress
        seconds_per_step = window.seconds / window.steps
        self.reporter.train_step(
            progress.step,
            progress.epoch + 1,
            loss / window.tokens,
            self.state.scheduler.get_last_lr()[0],
            float(self.last_grad_norm),
            window.tokens / window.seconds,
            eta_seconds(self.config.trainer, progress, batches_per_epoch, done, seconds_per_step),
            progress.train_tokens,
        )

    def checkpoint_if_due(self) -> None:
        settings, step = self.config.trainer, self.progress.step
        if step % settings.valid_every == 0:
            self.validate_and_save()
        elif settings.save_every is not None and step % settings.save_every == 0:
            self.save_last()

    def finish(self, reason: str) -> None:
        """Validate the last steps, or, when a signal stopped training, save them and stop."""
        progress, settings = self.progress, self.config.trainer
        if self.interrupted:
            self.save_last()
            received = self.stop_requests.received
            message = (
                f"{reason} at step {progress.step}; {self.checkpoints / 'last.pt'} holds it: "
                "continue with the same command and trainer.resume=true "
                f"hydra.run.dir={self.run_dir}"
            )
            into_log_file(f"stopped: {message}")
            raise Stopped(message, received.value if received else 15)
        if progress.step % settings.valid_every != 0:
            self.validate_and_save()
        log.info("training stopped: %s", reason)

    # ------------------------------------------------------------ checkpoints

    def save_last(self) -> None:
        """Rank 0 writes last.pt, with every rank's random state; the others wait for it."""
        rng = distributed.gather(random_state(self.device))
        if distributed.is_main():
            payload = checkpoint_payload(self.config, self.text_side, self.state, rng)
            save_checkpoint(payload, self.checkpoints / "last.pt")
        distributed.barrier()

    def validate_and_save(self) -> None:
        """Rank 0 validates and writes checkpoints (with every rank's random state); the
        other ranks wait for it."""
        rng = distributed.gather(random_state(self.device))
        if distributed.is_main():
            improved = self.validate()
            payload = checkpoint_payload(self.config, self.text_side, self.state, rng)
            save_checkpoint(payload, self.checkpoints / "last.pt")
            if improved:
                save_checkpoint(payload, self.checkpoints / "best.pt")
            if self.config.trainer.keep_last > 0:
                keep_snapshot(self.checkpoints, self.progress.step, self.config.trainer.keep_last)
        distributed.barrier()

    def validate(self) -> bool:
        """Score the valid split greedily (or with valid_beam_size); True if BLEU improved."""
        progress, settings = self.progress, self.config.trainer
        valid, tokenizer = self.corpus.valid, self.corpus.tokenizer
        loss = split_loss(self.model, valid, self.config.data.max_tokens, self.device)
        decode = replace(self.config.decode, beam_size=settings.valid_beam_size, nbest=1)
        scores, hyps = decode_split(self.model, tokenizer, valid, decode, self.device)
        fixed = valid.src_ids[: settings.attention_maps]
        images = attention_images(self.model, tokenizer, fixed, self.config.decode, self.device)
        improved = scores["bleu"] > progress.best_bleu
        if improved:
            progress.best_bleu, progress.bad_validations = scores["bleu"], 0
        else:
            progress.bad_validations += 1
        samples = samples_markdown(valid, hyps, settings.num_samples)
        self.reporter.validation(progress.step, loss, scores, samples, images, improved)
        return improved


def train(config: Config, run_dir: Path) -> dict | None:
    """Train, validate and test one model; write checkpoints, TensorBoard and results.json."""
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        with distributed.failures_reported(config.trainer.ddp_timeout_s):
            trainer = Trainer(config, run_dir)
            try:
                return train_and_test(trainer)
            finally:
                if trainer.reporter:
                    trainer.reporter.close()
                del trainer  # its DDP model holds the process group that shutdown releases
    finally:
        distributed.shutdown()


def train_and_test(trainer: Trainer) -> dict | None:
    """fit, then (rank 0 only) test; results.json and the returned results: rank 0's."""
    if not distributed.is_main():
        log.setLevel(logging.WARNING)  # one rank reports; the others only warn
    params = count_parameters(trainer.model)
    log.info(
        "model %s: %d parameters | device %s, %s | run dir %s",
        type(trainer.model).__name__,
        params,
        trainer.device,
        trainer.precision,
        trainer.run_dir,
    )
    trainer.fit()
    if not distributed.is_main():
        return None
    scores = final_test(
        trainer.model, trainer.corpus, trainer.config, trainer.checkpoints, trainer.device
    )
    name = model_name(trainer.config.model)  # "rnn", "bahdanau", "transformer"
    wall = time.monotonic() - trainer.started
    parent = trainer.parent.record() if trainer.parent else None
    results = run_results(
        trainer.config, name, scores, trainer.progress, params, trainer.device, wall, parent
    )
    results["directory"] = str(trainer.run_dir.resolve())  # where it trained: paths moved with it
    plan = {"compiled": trainer.plan.compiled, "fixed_shapes": trainer.progress.fixed_shapes}
    results["step_plan"] = plan  # how its steps ran: compiled, and the batches' shapes
    write_results(trainer.run_dir, results)
    return results
