"""The C heap under a CPU step (mt/common/heap.py): freed memory stays for reuse, and the
step it serves computes what it computed before."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import update_losses

from mt.common.heap import glibc_mallopt, keep_freed_memory

pytestmark = pytest.mark.skipif(glibc_mallopt() is None, reason="glibc's malloc only")

# A fresh process allocates and frees a 256 MiB tensor; its resident memory, in MiB, before
# and after: with freed memory kept it stays up, with glibc's defaults it falls back.
RESIDENT_AFTER_FREE = """
import sys, torch
from mt.common.heap import keep_freed_memory
def resident():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20
assert keep_freed_memory(sys.argv[1] == "keep")
before = resident()
x = torch.ones(64 * 2**20)
del x
print(resident() - before)
"""


def grown_after_free(mode: str) -> float:
    done = subprocess.run(
        [sys.executable, "-c", RESIDENT_AFTER_FREE, mode], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return float(done.stdout)


def test_freed_memory_stays_for_reuse_only_when_kept():
    assert grown_after_free("keep") > 200
    assert grown_after_free("default") < 50


def test_a_step_on_the_kept_heap_gives_the_plain_steps_losses(memorise_root, cache_dir, tmp_path):
    keep_freed_memory(False)
    plain = update_losses(
        memorise_root, cache_dir, tmp_path / "plain", 8, "trainer.keep_freed_memory=false"
    )
    kept = update_losses(memorise_root, cache_dir, tmp_path / "kept", 8)
    assert plain[-1] < plain[0]  # it trains
    assert kept == plain
