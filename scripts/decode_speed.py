"""How fast models translate a test set, side by side: each model given as NAME=PATH, where
PATH is a checkpoint, an ensemble of checkpoints joined by "+", or a directory mt.export wrote
(decoded by CTranslate2). Every model decodes the test split of the first model's corpus with
its own decode settings, in this one process and its threads: one untimed warm-up, then the
median of --repeats timed decodes, with the output's BLEU. Not a test: run it on an idle
machine.

    python scripts/decode_speed.py --data-root DATA --threads 2 \\
        teacher=runs/a/checkpoints/final.pt+runs/b/checkpoints/final.pt \\
        student=runs/student/checkpoints/final.pt student-int8=exports/student-int8
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from sacrebleu.metrics import BLEU

from mt.common.files import write_text
from mt.common.runtime import describe_device, pick_device, source_commit
from mt.config.schema import Engine
from mt.data.readers import read_split
from mt.decoding.translator import Translator
from mt.deploy.engine import open_translator


def opened(path: str, device: str) -> tuple[Translator, str]:
    """The translator of a checkpoint, a "+"-joined ensemble or an export directory."""
    paths = [Path(p) for p in path.split("+")]
    engine = Engine.ctranslate2 if paths[0].is_dir() else Engine.torch
    return open_translator(engine, paths, device), engine.value


def timed(translator: Translator, sources: list[str], repeats: int) -> tuple[float, list[str]]:
    """Median seconds of repeats decodes (after one untimed), and the output."""
    hyps = translator.translate(sources)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        translator.translate(sources)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), hyps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", metavar="NAME=PATH")
    parser.add_argument("--data-root", help="where the first model's corpus lies now")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sentences", type=int, help="only the first N test sentences")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, default=Path("decode_speed.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows, sources, refs = [], None, None
    for item in args.models:
        name, _, path = item.partition("=")
        translator, engine = opened(path, args.device)
        if sources is None:
            data = translator.config.data
            data.root = args.data_root or data.root
            sources, refs = read_split(data, "test")
            sources, refs = sources[: args.sentences], refs[: args.sentences]
        with torch.inference_mode():
            seconds, hyps = timed(translator, sources, args.repeats)
        bleu = BLEU().corpus_score(hyps, [refs]).score
        rows.append(
            {
                "model": name,
                "engine": engine,
                "path": path,
                "seconds": round(seconds, 2),
                "sentences_per_s": round(len(sources) / seconds, 1),
                "bleu": round(bleu, 2),
            }
        )
    report = {
        "rows": rows,
        "sentences": len(sources),
        "device": describe_device(pick_device(args.device)),
        "threads": args.threads,
        "torch": torch.__version__,
        "commit": source_commit(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_text(args.json, json.dumps(report, indent=2) + "\n")  # temporary name, renamed
    print("| model | engine | sentences/s | seconds | BLEU |\n|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['engine']} | {r['sentences_per_s']} | {r['seconds']} | "
            f"{r['bleu']:.2f} |"
        )


if __name__ == "__main__":
    main()
