"""The C heap under a CPU training step: large tensors reuse freed memory instead of fresh
pages from the kernel.

glibc's malloc serves each allocation over its mmap threshold (at most 32 MiB) with a new
mapping and unmaps it on free. A CPU step allocates several tensors that size every update
(the logits and their gradients, tokens × vocabulary floats), and the kernel zero-fills each
of their pages on first touch: a sixth of the fp32 step on a 2-core Xeon (docs/performance.md).
With no mappings and no trimming, freed memory stays in the heap and the next step reuses it;
the process's resident memory stays at its peak instead of falling between steps. PyTorch's
CPU tuning guide gets the same from jemalloc or tcmalloc; this needs no extra library."""

from __future__ import annotations

import ctypes
import ctypes.util

# mallopt's parameter numbers (glibc's malloc.h) and glibc's defaults.
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
DEFAULT_TRIM_THRESHOLD = 128 * 1024
DEFAULT_MMAP_MAX = 65536
NEVER_TRIM = 2**31 - 1  # mallopt takes an int: the largest one, so the heap never shrinks


def glibc_mallopt():
    """glibc's mallopt, or None where the C library is another (macOS, musl, Windows)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # noqa: B018 (only glibc has it; musl has mallopt too)
    except (OSError, TypeError, AttributeError):
        return None
    return libc.mallopt


def keep_freed_memory(keep: bool = True) -> bool:
    """Keep freed memory in the heap for reuse (keep) or restore glibc's defaults; whether
    this C library took the setting (False where it is not glibc)."""
    mallopt = glibc_mallopt()
    if mallopt is None:
        return False
    mmap_max, trim = (0, NEVER_TRIM) if keep else (DEFAULT_MMAP_MAX, DEFAULT_TRIM_THRESHOLD)
    return bool(mallopt(M_MMAP_MAX, mmap_max)) and bool(mallopt(M_TRIM_THRESHOLD, trim))
