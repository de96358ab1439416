"""One training loop for every model: batches, optimisation, validation, checkpoints, test."""

from __future__ import annotations

import json
import logging
import math
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.tensorboard import SummaryWriter

from mt import distributed
from mt.checkpoint import (
    check_vocabulary,
    keep_snapshot,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from mt.config import Config, DecodeConfig, to_plain_dict
from mt.data import Corpus, Split, load_corpus, make_batch, token_batches, train_batches
from mt.heatmap import attention_images
from mt.inference import autocast, describe_device, pick_device, translate
from mt.models import build_model, count_parameters
from mt.scoring import corpus_scores
from mt.tokenizer import PAD_ID

log = logging.getLogger("mt")


@dataclass
class Progress:
    """Everything besides weights and optimizer that resuming needs."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of this epoch already trained on
    best_bleu: float = -1.0
    bad_validations: int = 0  # validations since BLEU last improved
    train_seconds: float = 0.0  # time spent in training steps (validation excluded)
    train_tokens: int = 0  # target tokens trained on


def inverse_sqrt_schedule(warmup_steps: int):
    """LR factor: linear warm-up to 1 over warmup_steps, then decay with 1/sqrt(step)."""

    def factor(step: int) -> float:
        step += 1  # LambdaLR starts counting at 0; the first update should already move
        return min(step / warmup_steps, math.sqrt(warmup_steps / step))

    return factor


def token_loss(model: nn.Module, batch, label_smoothing: float) -> torch.Tensor:
    """Summed label-smoothed cross-entropy over the real target tokens."""
    logits = model(batch.src, batch.tgt_in)
    return F.cross_entropy(
        logits.flatten(0, 1).float(),
        batch.tgt_out.flatten(),
        ignore_index=PAD_ID,
        label_smoothing=label_smoothing,
        reduction="sum",
    )


class Trainer:
    def __init__(self, config: Config, run_dir: Path):
        self.config, self.run_dir = config, run_dir
        t = config.trainer
        if t.num_threads:
            torch.set_num_threads(t.num_threads)
        self.device = distributed.init(pick_device(t.device))
        # Dropout differs between ranks; the weights do not: DDP copies rank 0's at the start.
        torch.manual_seed(t.seed + distributed.rank())
        # Rank 0 builds the data cache; the others then read it.
        self.corpus: Corpus = distributed.main_first(lambda: load_corpus(config.data))
        self.model = build_model(config.model, self.corpus.tokenizer).to(self.device)
        # The model that training steps run through: DDP averages gradients across ranks.
        self.trained = (
            DistributedDataParallel(
                self.model, device_ids=[self.device] if self.device.type == "cuda" else None
            )
            if distributed.active()
            else self.model
        )
        if t.compile:  # the same module underneath: checkpoints and decoding are unchanged
            self.trained = torch.compile(self.trained)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(),
            lr=t.lr,
            betas=tuple(t.adam_betas),
            weight_decay=t.weight_decay,
            fused=self.device.type == "cuda" or None,
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, inverse_sqrt_schedule(t.warmup_steps)
        )
        self.progress = Progress()
        self.checkpoints = run_dir / "checkpoints"
        if t.resume:
            self.restore(self.checkpoints / "last.pt")
        # Rank 0 alone writes TensorBoard, checkpoints and results.
        self.writer = (
            SummaryWriter(str(run_dir / "tb"), purge_step=self.progress.step + 1)
            if distributed.is_main()
            else None
        )

    # ------------------------------------------------------------ checkpoints

    def rng_state(self) -> dict:
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return rng

    def payload(self, rng: list[dict]) -> dict:
        """Everything to resume from; rng holds every rank's random state, in rank order."""
        return {
            "config": to_plain_dict(self.config),
            "tokenizer": self.corpus.tokenizer.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "progress": asdict(self.progress),
            "rng": rng,
        }

    def restore(self, path: Path) -> None:
        payload = load_checkpoint(path)
        check_vocabulary(payload, self.corpus.tokenizer.to_dict(), path)
        load_weights(self.model, payload["model"], path)
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        self.progress = Progress(**payload["progress"])
        states = payload["rng"]
        if isinstance(states, dict):  # written before checkpoints kept one state per rank
            states = [states]
        # This rank's own state when the world size is unchanged, else rank 0's.
        rng = states[distributed.rank()] if len(states) == distributed.world_size() else states[0]
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        log.info("resumed from %s at step %d", path, self.progress.step)

    # ------------------------------------------------------------ training

    def train_step(self, batches: list) -> tuple[float, int, float]:
        """One optimizer update over this rank's len(batches) accumulated batches.

        Returns the summed loss and target tokens of all ranks, and the gradient norm."""
        local_tokens = sum(b.num_tgt_tokens for b in batches)
        (num_tokens,) = distributed.sum_all([local_tokens], self.device)
        # Normalise by the tokens of the whole update (all micro-batches, all ranks), so
        # accumulation and data parallelism equal one big batch. DDP averages gradients over
        # ranks, hence the world size.
        scale = distributed.world_size() / num_tokens
        total = 0.0
        for i, batch in enumerate(batches):
            batch = batch.to(self.device)
            last = i == len(batches) - 1
            # All-reduce gradients once per update, on its last micro-batch.
            with nullcontext() if last or not distributed.active() else self.trained.no_sync():
                with autocast(self.device):
                    loss = token_loss(self.trained, batch, self.config.trainer.label_smoothing)
                (loss * scale).backward()
            total += loss.item()
        grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), self.config.trainer.clip_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        (total,) = distributed.sum_all([total], self.device)
        return total / num_tokens, int(num_tokens), float(grad_norm)

    def should_stop(self) -> str | None:
        t, p = self.config.trainer, self.progress
        if t.max_steps is not None and p.step >= t.max_steps:
            return f"reached trainer.max_steps={t.max_steps}"
        if t.max_epochs is not None and p.epoch >= t.max_epochs:
            return f"reached trainer.max_epochs={t.max_epochs}"
        if t.max_minutes is not None and p.train_seconds >= t.max_minutes * 60:
            return f"reached trainer.max_minutes={t.max_minutes}"
        if t.patience is not None and p.bad_validations >= t.patience:
            return f"no BLEU improvement in {t.patience} validations"
        return None

    def agreed_stop(self) -> str | None:
        """Rank 0's stopping decision on every rank: their clocks differ, their steps must not."""
        reason = self.should_stop()
        if not distributed.active():
            return reason
        flag = float(distributed.is_main() and reason is not None)
        (stop,) = distributed.sum_all([flag], self.device)
        return (reason or "rank 0 stopped") if stop else None

    def eta_seconds(
        self, batches_per_epoch: int, batches_done: int, seconds_per_step: float
    ) -> float:
        t, p = self.config.trainer, self.progress
        left = []
        if t.max_steps is not None:
            left.append((t.max_steps - p.step) * seconds_per_step)
        if t.max_epochs is not None:
            batches = (t.max_epochs - p.epoch) * batches_per_epoch - batches_done
            left.append(batches / t.accumulate * seconds_per_step)
        if t.max_minutes is not None:
            left.append(t.max_minutes * 60 - p.train_seconds)
        return max(min(left), 0.0)

    def fit(self) -> str:
        t, p = self.config.trainer, self.progress
        data = self.config.data
        # Loss, tokens and seconds of the steps since the last log line.
        window_loss, window_tokens, window_seconds, window_steps = 0.0, 0, 0.0, 0
        world = distributed.world_size()
        reason = self.agreed_stop()
        while reason is None:
            # Every rank shuffles the same way, then takes its own share of the batches.
            batches = distributed.shard(
                train_batches(self.corpus.train, data.max_tokens, data.max_len, t.seed, p.epoch)
            )
            done = p.batch_in_epoch // world  # progress counts batches of all ranks
            while done < len(batches) and reason is None:
                step_start = time.perf_counter()
                chunk = batches[done : done + t.accumulate]
                loss, tokens, grad_norm = self.train_step(
                    [make_batch(self.corpus.train, b) for b in chunk]
                )
                seconds = time.perf_counter() - step_start
                p.step += 1
                done += len(chunk)
                p.batch_in_epoch = done * world
                p.train_seconds += seconds
                p.train_tokens += tokens
                window_loss, window_tokens = window_loss + loss, window_tokens + tokens
                window_seconds, window_steps = window_seconds + seconds, window_steps + 1
                if p.step % t.log_every == 0 and distributed.is_main():
                    self.log_train(
                        window_loss / window_steps,
                        grad_norm,
                        window_tokens / window_seconds,
                        self.eta_seconds(len(batches), done, window_seconds / window_steps),
                    )
                    window_loss, window_tokens, window_seconds, window_steps = 0.0, 0, 0.0, 0
                if p.step % t.valid_every == 0:
                    self.validate_and_save()
                reason = self.agreed_stop()
            if done >= len(batches):
                p.epoch += 1
                p.batch_in_epoch = 0
                reason = self.agreed_stop()
        if p.step % t.valid_every != 0:
            self.validate_and_save()
        log.info("training stopped: %s", reason)
        return reason

    def log_train(
        self, loss: float, grad_norm: float, tokens_per_second: float, eta: float
    ) -> None:
        p = self.progress
        lr = self.scheduler.get_last_lr()[0]
        for tag, value in (
            ("train/loss", loss),
            ("train/lr", lr),
            ("train/grad_norm", grad_norm),
            ("train/tokens_per_sec", tokens_per_second),
        ):
            self.writer.add_scalar(tag, value, p.step)
        log.info(
            "step %6d | epoch %3d | loss %6.3f | lr %.2e | %6.0f tok/s | eta %s",
            p.step,
            p.epoch + 1,
            loss,
            lr,
            tokens_per_second,
            time.strftime("%H:%M:%S", time.gmtime(eta)),
        )

    # ------------------------------------------------------------ validation

    @torch.no_grad()
    def split_loss(self, split: Split) -> float:
        """Mean per-token negative log-likelihood (no label smoothing) over a split."""
        self.model.eval()
        total, tokens = 0.0, 0
        for indices in token_batches(
            split.src_lengths(), split.tgt_lengths(), self.config.data.max_tokens, rng=None
        ):
            batch = make_batch(split, indices).to(self.device)
            with autocast(self.device):
                total += token_loss(self.model, batch, label_smoothing=0.0).item()
            tokens += batch.num_tgt_tokens
        self.model.train()
        return total / tokens

    def evaluate(self, split: Split, decode: DecodeConfig) -> tuple[dict, list[str]]:
        hyps = translate(self.model, self.corpus.tokenizer, split.src_ids, decode, self.device)
        return corpus_scores(hyps, split.tgt_text), hyps

    def validate_and_save(self) -> None:
        """Rank 0 validates and writes checkpoints (with every rank's RNG state); the other
        ranks wait for it."""
        rng = distributed.gather(self.rng_state())
        if distributed.is_main():
            self.validate(rng)
        distributed.barrier()

    def validate(self, rng: list[dict]) -> None:
        p, t = self.progress, self.config.trainer
        valid = self.corpus.valid
        loss = self.split_loss(valid)
        decode = DecodeConfig(
            **{**asdict(self.config.decode), "beam_size": t.valid_beam_size, "nbest": 1}
        )
        scores, hyps = self.evaluate(valid, decode)
        for tag, value in (
            ("valid/loss", loss),
            ("valid/ppl", math.exp(min(loss, 50))),
            ("valid/bleu", scores["bleu"]),
            ("valid/chrf", scores["chrf"]),
        ):
            self.writer.add_scalar(tag, value, p.step)
        samples = "\n\n".join(
            f"**src** {valid.src_text[i]}  \n**ref** {valid.tgt_text[i]}  \n**hyp** {hyps[i]}"
            for i in range(min(t.num_samples, len(valid)))
        )
        self.writer.add_text("valid/samples", samples, p.step)
        fixed = valid.src_ids[: t.attention_maps]
        for tag, image in attention_images(
            self.model, self.corpus.tokenizer, fixed, self.config.decode, self.device
        ).items():
            self.writer.add_image(tag, image, p.step, dataformats="HWC")
        improved = scores["bleu"] > p.best_bleu
        if improved:
            p.best_bleu, p.bad_validations = scores["bleu"], 0
        else:
            p.bad_validations += 1
        log.info(
            "valid step %d | loss %.3f | ppl %.2f | BLEU %.2f | chrF %.2f%s",
            p.step,
            loss,
            math.exp(min(loss, 50)),
            scores["bleu"],
            scores["chrf"],
            " | new best" if improved else "",
        )
        payload = self.payload(rng)
        save_checkpoint(payload, self.checkpoints / "last.pt")
        if improved:
            save_checkpoint(payload, self.checkpoints / "best.pt")
        if t.keep_last > 0:
            keep_snapshot(self.checkpoints, p.step, t.keep_last)
        self.writer.flush()

    # ------------------------------------------------------------ final test

    def test(self) -> dict:
        """Decode valid and test with the best checkpoint and config.decode (beam search)."""
        best = load_checkpoint(self.checkpoints / "best.pt")
        self.model.load_state_dict(best["model"])
        results = {}
        for name, split in (("valid", self.corpus.valid), ("test", self.corpus.test)):
            scores, hyps = self.evaluate(split, self.config.decode)
            hyp_file = self.run_dir / f"{name}.hyp.{self.config.data.tgt_lang}"
            hyp_file.write_text("".join(h + "\n" for h in hyps), encoding="utf-8")
            results[name] = scores
        return results


def train(config: Config, run_dir: Path) -> dict:
    """Train, validate and test one model; write checkpoints, TensorBoard and results.json."""
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        return train_and_test(Trainer(config, run_dir))
    finally:
        distributed.shutdown()


def train_and_test(trainer: Trainer) -> dict | None:
    """fit, then (rank 0 only) test; results.json and the returned results: rank 0's."""
    if not distributed.is_main():
        log.setLevel(logging.WARNING)  # one rank reports; the others only warn
    params = count_parameters(trainer.model)
    log.info(
        "model %s: %d parameters | device %s | run dir %s",
        type(trainer.model).__name__,
        params,
        trainer.device,
        trainer.run_dir,
    )
    trainer.fit()
    if not distributed.is_main():
        return None
    scores = trainer.test()
    trainer.writer.close()
    p = trainer.progress
    results = {
        "model": type(trainer.model).__name__.lower(),
        "valid": {k: scores["valid"][k] for k in ("bleu", "chrf")},
        "test": {k: scores["test"][k] for k in ("bleu", "chrf", "signature")},
        "best_valid_bleu_greedy": p.best_bleu,
        "steps": p.step,
        "epochs": p.epoch,
        "train_seconds": round(p.train_seconds, 1),
        "tgt_tokens_per_sec": round(p.train_tokens / max(p.train_seconds, 1e-9), 1),
        "params": params,
        "device": str(trainer.device),
        "hardware": describe_device(trainer.device),
        "world_size": distributed.world_size(),
    }
    (trainer.run_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    test = scores["test"]
    print(
        f"test BLEU {test['bleu']:.2f} | chrF {test['chrf']:.2f} | {test['signature']}", flush=True
    )
    return results
