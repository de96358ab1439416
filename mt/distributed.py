"""torch.distributed under torchrun: joining the job, rank queries and the few collectives
the trainer needs.

Launched without torchrun, a run is a world of one: every helper here is then a no-op, so
the trainer has one code path.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


def init(device: torch.device) -> torch.device:
    """Join the process group when torchrun started us; return this process's device.

    The backend follows the device: NCCL on CUDA (one GPU per local rank), Gloo on CPU."""
    if "RANK" not in os.environ or dist.is_initialized():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def active() -> bool:
    return dist.is_initialized()


def rank() -> int:
    """This process's rank; before joining the group, the one torchrun gave it (else 0)."""
    return dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def main_first(work: Callable[[], T]) -> T:
    """Rank 0 does work first (e.g. builds a cache), the others then do it (and reuse it)."""
    if not is_main():
        barrier()
    result = work()
    if is_main():
        barrier()
    return result


def sum_all(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sum of a few numbers over all ranks."""
    if not dist.is_initialized():
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def gather(obj: T) -> list[T]:
    """Every rank's obj, in rank order, on every rank."""
    if not dist.is_initialized():
        return [obj]
    objects = [None] * world_size()
    dist.all_gather_object(objects, obj)
    return objects


def shard(batches: list[T]) -> list[T]:
    """This rank's share of an epoch's batches: every world_size-th, from the same shuffled
    list on every rank, trimmed so each rank gets the same number (no rank waits at the end)."""
    world = world_size()
    return batches[: len(batches) - len(batches) % world][rank() :: world]
