"""torch.distributed under torchrun: joining the job, rank queries and the few collectives
the trainer needs.

Launched without torchrun, a run is a world of one: every helper here is then a no-op, so
the trainer has one code path.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist

from mt.common.errors import MTError

T = TypeVar("T")

_store: dist.Store | None = None
ROLL_CALL_SECONDS = 5.0  # how long ranks whose collective failed wait for each other


def init(device: torch.device, timeout: timedelta) -> torch.device:
    """Join the process group when torchrun started us; return this process's device.

    The backend follows the device: NCCL on CUDA (one GPU per local rank), Gloo on CPU. A
    collective that waits longer than timeout for another rank fails on every rank."""
    if "RANK" not in os.environ or dist.is_initialized():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    # torch._dynamo, which DDP's constructor imports, keeps alive every process group that
    # exists when it is first imported: destroy_process_group would leave that group's Gloo
    # threads running into interpreter teardown, the likely cause of a rank that once aborted
    # at exit ("terminate called without an active exception"). Imported first, it holds none.
    importlib.import_module("torch._dynamo")

    global _store
    # The rendezvous that init_process_group would make itself, kept so that a rank can tell
    # the others it still answers when a collective fails (see failures_reported).
    _store, rank_, world = next(dist.rendezvous("env://", timeout=timeout))
    _store.set_timeout(timeout)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, store=_store, rank=rank_, world_size=world, timeout=timeout)
    return device


def shutdown() -> None:
    """Leave the process group; once no model holds it, its communication threads stop here."""
    global _store
    if dist.is_initialized():
        dist.destroy_process_group()
    _store = None


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


def local_rank() -> int:
    """This process's rank on its machine (torchrun's LOCAL_RANK; 0 without torchrun)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


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


def silent_ranks() -> list[int]:
    """After a failed collective: the ranks that do not answer a roll call in the store."""
    _store.set(f"mt/answers/{rank()}", "1")
    time.sleep(ROLL_CALL_SECONDS)  # the other survivors see the failure at about the same time
    return [r for r in range(world_size()) if not _store.check([f"mt/answers/{r}"])]


def collective_failure(error: BaseException) -> bool:
    """Whether error comes from the communication backend (a rank stalled past the timeout
    or died), not from this rank's own work."""
    if isinstance(error, dist.DistError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and ("gloo" in text or "nccl" in text)


@contextmanager
def failures_reported(timeout_s: int) -> Iterator[None]:
    """A failed collective ends this rank with one line naming the ranks that stopped
    answering, instead of a backend traceback. (NCCL's watchdog aborts the process itself.)"""
    try:
        yield
    except Exception as error:
        if not (active() and collective_failure(error)):
            raise
        try:
            silent = silent_ranks()
        except Exception:  # the store's host is the silent one
            silent = []
        who = f"rank {', '.join(map(str, silent))}" if silent else "another rank"
        raise MTError(
            f"rank {rank()}: {who} stopped answering (stalled or died; no answer within "
            f"trainer.ddp_timeout_s={timeout_s}): ending the job; trainer.resume=true "
            f"continues from the last checkpoint"
        ) from None
