"""The C heap under a CPU step (mt/common/heap.py): freed memory stays for reuse, and the
step it serves computes what it computed before."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import update_losses

from mt.common.heap import glibc_mallopt, keep_freed_memory

pytestmark = pytest.mark.skipif(glibc_mallopt() is None, reason="glibc's malloc only")

# A fresh process allocates and frees a 256 MiB tensor; its resident memory, in MiB, before
# and after: with freed memory kept it stays up, with glibc's defaults it falls back.
MEASURE = """
def resident():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20
before = resident()
x = torch.ones(64 * 2**20)
del x
print(resident() - before)
"""
RESIDENT_AFTER_FREE = (
    """
import sys, torch
from mt.common.heap import keep_freed_memory
assert keep_freed_memory(sys.argv[1] == "keep")
"""
    + MEASURE
)
# The same after building a Trainer on the CPU with trainer.keep_freed_memory=ARGV[1]: the
# setting reaches the heap through the Trainer, as `mt.train` builds it.
AFTER_A_TRAINER = (
    """
import sys, torch
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from helpers import make_config
from mt.training.trainer import Trainer
root, cache, run = (Path(arg) for arg in sys.argv[3:6])
config = make_config(root, "tiny", cache, f"trainer.keep_freed_memory={sys.argv[1]}")
Trainer(config, run)
"""
    + MEASURE
)


def grown_after_free(program: str, *args: str) -> float:
    done = subprocess.run([sys.executable, "-c", program, *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return float(done.stdout.split()[-1])


def test_freed_memory_stays_for_reuse_only_when_kept():
    assert grown_after_free(RESIDENT_AFTER_FREE, "keep") > 200
    assert grown_after_free(RESIDENT_AFTER_FREE, "default") < 50


def test_the_trainer_keeps_freed_memory_by_its_setting(memorise_root, cache_dir, tmp_path):
    where = [str(Path(__file__).parent), str(memorise_root), str(cache_dir)]
    kept = grown_after_free(AFTER_A_TRAINER, "true", *where, str(tmp_path / "kept"))
    plain = grown_after_free(AFTER_A_TRAINER, "false", *where, str(tmp_path / "plain"))
    assert kept > 200 and plain < 50


def test_a_step_on_the_kept_heap_gives_the_plain_steps_losses(memorise_root, cache_dir, tmp_path):
    keep_freed_memory(False)
    plain = update_losses(
        memorise_root, cache_dir, tmp_path / "plain", 8, "trainer.keep_freed_memory=false"
    )
    kept = update_losses(memorise_root, cache_dir, tmp_path / "kept", 8)
    assert plain[-1] < plain[0]  # it trains
    assert kept == plain
