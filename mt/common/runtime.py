"""Where and how torch runs: the device, the CPU thread count, mixed precision; and the
commit of the code that runs."""

from __future__ import annotations

import platform
import resource
import subprocess
from pathlib import Path

import torch

from mt.common.errors import MTError


def pick_device(name: str) -> torch.device:
    """ "auto": the GPU when there is one, else the CPU; anything else as torch names it,
    refused in one line when torch does not know it or this machine does not have it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise MTError(
            f"device={name}: not a device torch knows (auto, cpu, cuda, cuda:N)"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MTError(f"device={name}: this torch sees no CUDA device (device=cpu or auto)")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise MTError(f"device={name}: this machine has {torch.cuda.device_count()} CUDA devices")
    return device


def set_cpu_threads(count: int | None) -> None:
    """Fix this thread's CPU thread count: count, or torch's default when None."""
    if count:
        torch.set_num_threads(count)
    # torch gives a thread its count lazily, on its first parallel op, from a process-wide value
    # that the last set_num_threads anywhere wrote; the DataLoader's pin-memory thread writes 1.
    # Reading the count now settles it before any loader starts, or GPU runs compute with 1.
    torch.get_num_threads()


def describe_device(device: torch.device) -> str:
    """Hardware in words, for results: the GPU's name, or the CPU model and its thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        model = names[0] if names else model
    except OSError:  # not Linux
        pass
    return f"{model}, {torch.get_num_threads()} threads"


def bf16_is_fast(device: torch.device) -> bool:
    """Whether bf16 matmuls beat fp32 here: on CUDA, and on CPUs with bf16 dot products
    (AVX512-BF16, AMX). Elsewhere the CPU converts and computes in fp32, only slower."""
    if device.type == "cuda":
        return True
    capabilities = torch.cpu.get_capabilities() if device.type == "cpu" else {}
    return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))


def training_precision(device: torch.device, setting: str) -> str:
    """trainer.precision resolved for this device: "bf16" or "fp32"."""
    if setting == "auto":
        return "bf16" if bf16_is_fast(device) else "fp32"
    return setting


def autocast(device: torch.device, precision: str | None = None):
    """bf16 autocast when precision is "bf16"; without one, on CUDA only: decoding and
    validation on a CPU stay fp32, as every earlier score was measured."""
    enabled = device.type == "cuda" if precision is None else precision == "bf16"
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def source_commit() -> str | None:
    """The git commit of this code, with "-dirty" when tracked files differ from it; None
    outside mt's own checkout (an installed package, even one inside another repository)."""
    repo = Path(__file__).resolve().parents[2]  # mt/common/runtime.py -> the checkout

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        top, head = git("rev-parse", "--show-toplevel", "HEAD").splitlines()
        # git walks up from site-packages into any repository that holds a virtualenv:
        # only a checkout whose top is ours, and that tracks this file, is mt's.
        if Path(top).resolve() != repo or not git("ls-files", "mt/common/runtime.py"):
            return None
        changed = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, ValueError, subprocess.CalledProcessError):
        return None
    return head + ("-dirty" if changed else "")


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a timing's end; nothing to wait for on a CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_mb(device: torch.device) -> float:
    """The process's peak memory: the most allocated on a GPU, the resident set on a CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # Linux: KiB
