"""How the data pipeline scales: synthetic corpora of N pairs built from Multi30k (each pair
joins two random Multi30k pairs, about 22 words a side), and for each N: mt.prepare's time and
peak memory, then a warm start (cache present) of mt.train to its first step and its peak
memory over 200 steps, in one process and as two torchrun (Gloo) ranks.

    python scripts/bench_scale.py --data-root DATA --sizes 100000 1000000 4500000 \\
        --work /tmp/scale --out scale.json

Timings mean something only on an otherwise idle machine. The model is a small Transformer:
what is measured is the data's cost, not the model's.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SMALL_MODEL = ["model.d_model=64", "model.num_heads=4", "model.num_layers=2", "model.ff_dim=128"]


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found += children
            todo += children
    return found


def anonymous_kib(pid: int) -> int:
    """RssAnon: resident memory that is the process's own, not pages of mapped files."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def sample_anonymous(pid: int, peak: dict, done: threading.Event) -> None:
    """Largest RssAnon of any process below pid, sampled every 0.2 s."""
    while not done.wait(0.2):
        for child in descendants(pid):
            peak["kib"] = max(peak["kib"], anonymous_kib(child))


def measure(command: list[str], first_line: str | None) -> dict:
    """Run command; its wall time, the time until it printed a line matching first_line,
    the peak resident memory of its largest process (child or grandchild; it counts the
    pages of memory-mapped files it touched, which the kernel may drop) and the peak of
    that process's own (anonymous) memory."""
    start = time.monotonic()
    child = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    peak, done = {"kib": anonymous_kib(child.pid)}, threading.Event()
    sampler = threading.Thread(target=sample_anonymous, args=(os.getpid(), peak, done), daemon=True)
    sampler.start()
    first, tail = None, []
    for line in child.stdout:
        tail = (tail + [line])[-30:]
        if first is None and first_line and re.search(first_line, line):
            first = time.monotonic() - start
    status = child.wait()
    done.set()
    sampler.join()
    if status != 0:
        raise SystemExit(f"failed ({status}): {' '.join(command)}\n{''.join(tail)}")
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "seconds": time.monotonic() - start,
        "first_line_seconds": first,
        "peak_rss_mb": peak_kib / 1024,
        "peak_anon_mb": peak["kib"] / 1024,
    }


def measured(command: list[str], first_line: str | None = None) -> dict:
    """measure() in a fresh process: ru_maxrss of children only ever grows within one."""
    wrapper = [sys.executable, __file__, "--measure", json.dumps([command, first_line])]
    return json.loads(subprocess.run(wrapper, capture_output=True, text=True, check=True).stdout)


def multi30k(root: Path, split: str, lang: str) -> list[str]:
    with gzip.open(root / "multi30k" / f"{split}.{lang}.gz", "rt", encoding="utf-8") as f:
        return f.read().splitlines()


def build_corpus(root: Path, directory: Path, pairs: int) -> None:
    """train.{de,en}: pairs lines, each two random Multi30k training pairs joined; val and
    test: Multi30k's own."""
    if (directory / "train.en").is_file():
        return
    directory.mkdir(parents=True, exist_ok=True)
    de, en = multi30k(root, "train", "de"), multi30k(root, "train", "en")
    rng = np.random.default_rng(0)
    with open(directory / "train.de", "w") as f_de, open(directory / "train.en", "w") as f_en:
        for start in range(0, pairs, 100_000):
            count = min(100_000, pairs - start)
            a, b = rng.integers(len(de), size=count), rng.integers(len(de), size=count)
            f_de.write("".join(f"{de[i]} {de[j]}\n" for i, j in zip(a, b, strict=True)))
            f_en.write("".join(f"{en[i]} {en[j]}\n" for i, j in zip(a, b, strict=True)))
    for split in ("val", "test_2016_flickr"):
        for lang in ("de", "en"):
            (directory / f"{split}.{lang}").write_text(
                "\n".join(multi30k(root, split, lang)) + "\n"
            )


def one_size(args: argparse.Namespace, pairs: int) -> dict:
    name = f"synthetic-{pairs}"
    build_corpus(Path(args.data_root), args.work / name, pairs)
    data = [f"data.root={args.work}", f"data.name={name}", f"data.cache_dir={args.work / 'cache'}"]
    data += [f"data.spm_sample={args.spm_sample}", *args.set]
    prepare = measured([sys.executable, "-m", "mt.prepare", *data])
    train = ["-m", "mt.train", "+experiment=transformer", *data, *SMALL_MODEL]
    train += [f"trainer.max_steps={args.steps}", f"trainer.valid_every={args.steps}"]
    train += ["trainer.log_every=1", "trainer.max_minutes=null", "decode.beam_size=1"]
    first_step = r"step +1 \|"
    runs = {}
    for ranks, launcher in (
        (1, [sys.executable]),
        (2, [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]),
    ):
        run_dir = args.work / "runs" / f"{name}-{ranks}"
        command = [*launcher, *train, f"hydra.run.dir={run_dir}", "trainer.overwrite=true"]
        if ranks == 2:
            command.append("trainer.num_threads=1")
        runs[ranks] = measured(command, first_step)
    return {
        "pairs": pairs,
        "prepare_seconds": round(prepare["seconds"], 1),
        "prepare_peak_rss_mb": round(prepare["peak_rss_mb"]),
        "prepare_peak_anon_mb": round(prepare["peak_anon_mb"]),
        "warm_start_seconds": round(runs[1]["first_line_seconds"], 1),
        "train_peak_rss_mb": round(runs[1]["peak_rss_mb"]),
        "train_peak_anon_mb": round(runs[1]["peak_anon_mb"]),
        "ddp_warm_start_seconds": round(runs[2]["first_line_seconds"], 1),
        "ddp_peak_rss_mb_per_rank": round(runs[2]["peak_rss_mb"]),
        "ddp_peak_anon_mb_per_rank": round(runs[2]["peak_anon_mb"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--data-root", help="a directory that holds multi30k/ (required)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 4_500_000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/mt-scale"))
    parser.add_argument("--spm-sample", type=int, default=1_000_000)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="more overrides")
    args = parser.parse_args()
    if args.measure:  # a measuring process (measured()): it takes nothing else
        print(json.dumps(measure(*json.loads(args.measure))))
        return
    if args.data_root is None:
        parser.error("--data-root is required")
    import torch  # the measuring processes above need neither torch nor mt

    from mt.common.runtime import describe_device

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    )
    report = {
        "command": " ".join(sys.argv),
        "commit": commit.stdout.strip(),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{describe_device(torch.device('cpu'))}, {len(os.sched_getaffinity(0))} cores",
        "rows": [],
    }
    for pairs in args.sizes:
        report["rows"].append(one_size(args, pairs))
        print(json.dumps(report["rows"][-1]), flush=True)
        if args.out:
            args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
