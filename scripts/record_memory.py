"""What recording every search costs in memory: `mt.translate record=` over the first N test
sentences at several lines_per_batch, in this process, each line one input. The recorded
nodes are Python objects, so the peak of Python's heap (tracemalloc) is their cost; the model
and its tensors are the same in every setting. Not a test: run it on an idle machine.

    python scripts/record_memory.py --checkpoint runs/tf/checkpoints/final.pt \\
        --data-root DATA --sentences 1000 --lines-per-batch 50 1000
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
import tracemalloc
from datetime import datetime, timezone
from pathlib import Path

import torch

from mt.common.files import write_text
from mt.common.runtime import source_commit
from mt.config.schema import DecodeOverrides
from mt.config.tools import TranslateConfig
from mt.data.readers import read_split
from mt.decoding.streaming import translate_stream
from mt.decoding.translator import Translator


def measured(translator: Translator, lines: list[str], config: TranslateConfig) -> dict:
    """Peak Python heap (MB), seconds and record size of one recorded translation of lines."""
    source = io.BytesIO("".join(line + "\n" for line in lines).encode())
    with tempfile.TemporaryDirectory() as scratch:
        record_path = Path(scratch) / "record.jsonl"
        start = time.perf_counter()
        tracemalloc.start()
        with record_path.open("w", encoding="utf-8") as record:
            translate_stream(translator, config, source, io.StringIO(), "test", None, record)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        seconds = time.perf_counter() - start
        size = record_path.stat().st_size
    return {
        "peak_heap_mb": round(peak / 2**20, 1),
        "seconds": round(seconds, 1),
        "record_bytes": size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data-root", help="where the checkpoint's corpus lies now")
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--lines-per-batch", type=int, nargs="+", default=[50, 1000])
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--json", type=Path, default=Path("record_memory.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    translator = Translator.from_checkpoint(args.checkpoint, "cpu")
    data = translator.config.data
    data.root = args.data_root or data.root
    lines = read_split(data, "test")[0][: args.sentences]
    decode = DecodeOverrides(beam_size=args.beam)
    rows = []
    for chunk in args.lines_per_batch:
        config = TranslateConfig(decode=decode, segment=False, lines_per_batch=chunk)
        rows.append({"lines_per_batch": chunk, **measured(translator, lines, config)})
    report = {
        "checkpoint": args.checkpoint,
        "sentences": len(lines),
        "beam": args.beam,
        "rows": rows,
        "threads": args.threads,
        "commit": source_commit(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_text(args.json, json.dumps(report, indent=2) + "\n")
    print("| lines_per_batch | peak Python heap (MB) | seconds | record (bytes) |")
    print("|---|---|---|---|")
    for r in rows:
        cells = (r["lines_per_batch"], r["peak_heap_mb"], r["seconds"], r["record_bytes"])
        print("| " + " | ".join(str(cell) for cell in cells) + " |")


if __name__ == "__main__":
    main()
