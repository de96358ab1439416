"""One optimizer update, the training step without the loop around it: the Trainer runs it on
the corpus's batches, scripts/bench_gpu.py on synthetic ones."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from mt.common.runtime import autocast
from mt.config.schema import DataConfig, TrainerConfig
from mt.training import distributed
from mt.training.loss import token_loss
from mt.training.schedule import inverse_sqrt_schedule


@dataclass(frozen=True)
class StepPlan:
    """How the training step runs: compiled (torch.compile), and whether batches are padded
    to a few fixed shapes (what a compiled step wants: no recompiling per shape)."""

    compiled: bool
    fixed_shapes: bool


def step_plan(
    device: torch.device, trainer: TrainerConfig, data: DataConfig, precision: str
) -> StepPlan:
    """The plan by the settings, null ones decided by the device: compiled and fixed shapes
    on a GPU; on a CPU eager, with fixed shapes in bf16. A CPU's bf16 matmuls are oneDNN
    kernels built for each shape and kept in a cache of 1024: exact batches bring hundreds of
    shapes an epoch, so the step rebuilds kernels for ever (docs/performance.md)."""
    compiled = device.type == "cuda" if trainer.compile is None else trainer.compile
    cpu_bf16 = device.type == "cpu" and precision == "bf16"
    fixed = (compiled or cpu_bf16) if data.fixed_shapes is None else data.fixed_shapes
    return StepPlan(compiled, fixed)


def wrapped(model: nn.Module, device: torch.device, plan: StepPlan) -> nn.Module:
    """What training batches run through: the model, DDP-wrapped across ranks (gradients
    averaged) and compiled by the plan; the same parameters underneath, so checkpoints and
    decoding are unchanged."""
    if distributed.active():
        model = DistributedDataParallel(
            model, device_ids=[device] if device.type == "cuda" else None
        )
    return torch.compile(model) if plan.compiled else model


def optimizer_and_schedule(model: nn.Module, settings: TrainerConfig, device: torch.device):
    """Adam, fused on CUDA and the CPU (one kernel for all parameters; on a 2-core CPU a third
    of the per-tensor loop's time), and its inverse-sqrt warm-up."""
    optimizer = torch.optim.Adam(
        model.parameters(),
        lr=settings.lr,
        betas=tuple(settings.adam_betas),
        weight_decay=settings.weight_decay,
        fused=device.type in ("cuda", "cpu") or None,
    )
    return optimizer, torch.optim.lr_scheduler.LambdaLR(
        optimizer, inverse_sqrt_schedule(settings.warmup_steps)
    )


@dataclass
class Update:
    model: nn.Module  # the parameters: clipped and stepped
    wrapped: nn.Module  # what batches run through: model, or it DDP-wrapped and/or compiled
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    config: TrainerConfig
    device: torch.device
    precision: str  # "bf16" or "fp32" (mt.common.runtime.training_precision)

    def __call__(self, batches: list) -> tuple[torch.Tensor, int, torch.Tensor]:
        """One optimizer update over this rank's len(batches) accumulated batches.

        Returns this rank's summed loss and the target tokens of all ranks, and the gradient
        norm; the tensors stay on the device (read at log time: no host sync in a step on
        one GPU; with several, the token count's all-reduce is one)."""
        local_tokens = sum(b.num_tgt_tokens for b in batches)
        (num_tokens,) = distributed.sum_all([local_tokens], self.device)
        # Normalise by the tokens of the whole update (all micro-batches, all ranks), so
        # accumulation and data parallelism equal one big batch. DDP averages gradients over
        # ranks, hence the world size.
        scale = distributed.world_size() / num_tokens
        total = torch.zeros((), device=self.device)
        for i, batch in enumerate(batches):
            batch = batch.to(self.device)
            last = i == len(batches) - 1
            # All-reduce gradients once per update, on its last micro-batch.
            with nullcontext() if last or not distributed.active() else self.wrapped.no_sync():
                with autocast(self.device, self.precision):
                    loss = token_loss(self.wrapped, batch, self.config.label_smoothing)
                (loss * scale).backward()
            total += loss.detach().float()
        grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return total, int(num_tokens), grad_norm.detach()
