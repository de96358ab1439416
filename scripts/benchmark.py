"""Training and decoding speed of every architecture, measured: not a test, run it by hand.

    python scripts/benchmark.py --data-root DATA                  # all models
    python scripts/benchmark.py --no-cache transformer     # + cache-free beam 5 for these models
    python scripts/benchmark.py --models transformer --checkpoint transformer=best.pt \
        --ctranslate2 transformer          # + the same checkpoint exported to CTranslate2

For each model (the Multi30k experiments, and transformer-base: 6+6 layers, d_model 512,
8 heads, FFN 2048) it reports training throughput (source and target tokens/s, steps/s) on
real Multi30k token batches, the padding efficiency of those batches (real tokens / padded
slots), peak memory (RSS on CPU, max allocated on CUDA), and decoding speed on
test_2016_flickr (sentences/s, target tokens/s) greedy and with beam 5. Each model runs in its
own process, so peak memory is its own. Warm-up steps are excluded; figures are medians over
--repeats. With --ctranslate2, the trained checkpoint is also exported (float32 and int8 on a
CPU, float16 and int8 on CUDA) and decoded by CTranslate2 with the same threads, sentences and
batch size, in the same process; its rows count the test lines whose beam-5 output differs from
PyTorch's and score both with sacrebleu. Prints markdown tables; writes JSON with the command,
git commit, device, torch version and date.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from mt.common.checkpoint import check_vocabulary, load_checkpoint, load_weights
from mt.common.runtime import describe_device, peak_memory_mb, pick_device, synchronize
from mt.config.schema import DecodeConfig
from mt.config.store import composed_config
from mt.data.batches import make_batch, train_batches
from mt.data.corpus import load_corpus
from mt.decoding.inference import TorchEngine
from mt.evaluation.scores import corpus_scores
from mt.training.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
MODELS = {
    "transformer": ["+experiment=transformer"],
    "rnn": ["+experiment=rnn"],
    "bahdanau": ["+experiment=bahdanau"],
    "transformer-base": [
        "+experiment=transformer",
        "model.d_model=512",
        "model.num_heads=8",
        "model.num_layers=6",
        "model.ff_dim=2048",
    ],
}


def padding_efficiency(batches, split) -> dict[str, float]:
    """Real tokens / padded slots over one epoch of training batches, source and target."""
    real_src = real_tgt = slots_src = slots_tgt = 0
    src_lengths, tgt_lengths = split.src_lengths(), split.tgt_lengths() + 1  # + BOS/EOS
    for indices in batches:
        real_src += int(src_lengths[indices].sum())
        real_tgt += int(tgt_lengths[indices].sum())
        slots_src += len(indices) * int(src_lengths[indices].max())
        slots_tgt += len(indices) * int(tgt_lengths[indices].max())
    return {"source": real_src / slots_src, "target": real_tgt / slots_tgt}


def measure_training(trainer: Trainer, batches, args) -> dict:
    train = trainer.corpus.train
    steps = [[make_batch(train, b)] for b in batches[: args.warmup + args.steps]]
    for step in steps[: args.warmup]:
        trainer.train_step(step)
    rates = []
    for _ in range(args.repeats):
        synchronize(trainer.device)
        start = time.perf_counter()
        for step in steps[args.warmup :]:
            trainer.train_step(step)
        synchronize(trainer.device)
        rates.append(time.perf_counter() - start)
    seconds = statistics.median(rates)
    timed = [b for step in steps[args.warmup :] for b in step]
    return {
        "steps_per_sec": args.steps / seconds,
        "src_tokens_per_sec": sum(int((b.src != 0).sum()) for b in timed) / seconds,
        "tgt_tokens_per_sec": sum(b.num_tgt_tokens for b in timed) / seconds,
    }


def measure_decoding(
    engine, src_ids: list, beam: int, incremental: bool, args
) -> tuple[dict, list]:
    """Sentences and target tokens per second of engine over src_ids, and its 1-best output."""
    decode = DecodeConfig(beam_size=beam, incremental=incremental)
    engine(src_ids[:32], decode)  # warm-up
    times, results = [], None
    for _ in range(args.decode_repeats):
        start = time.perf_counter()
        results = engine(src_ids, decode)  # returns Python lists: the device has finished
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    tokens = sum(len(hyps[0].tokens) + 1 for hyps in results)  # + EOS
    speed = {"sentences_per_sec": len(src_ids) / seconds, "tgt_tokens_per_sec": tokens / seconds}
    return speed, [(hyps[0].tokens, hyps[0].score) for hyps in results]


def run_one(name: str, args) -> dict:
    config = compose_config(name, args)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(config, Path(run_dir))
        data = config.data
        batches = train_batches(trainer.corpus.train, data.max_tokens, data.max_len, 0, 0)
        result = {
            "model": name,
            "params": sum(p.numel() for p in trainer.model.parameters()),
            "padding_efficiency": padding_efficiency(batches, trainer.corpus.train),
            "train": measure_training(trainer, batches, args),
        }
        # Decoding speed depends on output lengths: measure it with trained weights when given
        # (an untrained model stops after a token or two, or never).
        if name in args.checkpoints:
            path = args.checkpoints[name]
            payload = load_checkpoint(path)
            check_vocabulary(payload, trainer.corpus.tokenizer.to_dict(), path)
            load_weights(trainer.model, payload["model"], path)
        result["decoded_with"] = args.checkpoints.get(name, "untrained weights")
        trainer.model.eval()
        engine = TorchEngine(trainer.model, trainer.device)
        src_ids = trainer.corpus.test.src_ids[: args.sentences]
        for beam in (1, 5):
            speed, cached = measure_decoding(engine, src_ids, beam, True, args)
            result[f"decode_beam{beam}"] = speed
            if name in args.no_cache.split(",") and beam == 5:
                slow, uncached = measure_decoding(engine, src_ids, beam, False, args)
                result["decode_beam5_no_cache"] = slow
                result["no_cache_same_output"] = [t for t, _ in cached] == [t for t, _ in uncached]
                result["no_cache_max_score_diff"] = max(
                    abs(a - b) for (_, a), (_, b) in zip(cached, uncached, strict=True)
                )
        if name in args.ctranslate2.split(","):  # compared with CTranslate2 by main()
            test = trainer.corpus.test
            refs = test.tgt_text[: args.sentences]
            result["test_bleu_beam5"] = beam5_bleu(trainer.corpus.tokenizer, cached, refs)
            result["beam5_tokens"] = [tokens for tokens, _ in cached]
        result["peak_memory_mb"] = peak_memory_mb(trainer.device)
        result["device"] = describe_device(trainer.device)
    return result


def beam5_bleu(tokenizer, outputs: list, refs: list[str]) -> float:
    return corpus_scores(tokenizer.decode_tgt([tokens for tokens, _ in outputs]), refs)["bleu"]


def run_ctranslate2(name: str, quantization: str, args) -> dict:
    """The trained checkpoint exported to CTranslate2 and decoded like PyTorch (same threads,
    sentences and batch size): speed, test BLEU and its beam-5 output, in a process of its own
    like every row."""
    from mt.deploy.convert import export
    from mt.deploy.engine import CTranslate2Engine

    config = compose_config(name, args)
    if args.threads:
        torch.set_num_threads(args.threads)
    corpus = load_corpus(config.data)
    src_ids, refs = corpus.test.src_ids[: args.sentences], corpus.test.tgt_text[: args.sentences]
    result = {"engine": f"ctranslate2 {quantization}"}
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / quantization
        export(args.checkpoints[name], out, quantization)
        engine = CTranslate2Engine(
            out, corpus.tokenizer, config.model.max_positions, "auto", torch.get_num_threads()
        )
        for beam in (1, 5):
            result[f"decode_beam{beam}"], outputs = measure_decoding(
                engine, src_ids, beam, True, args
            )
    result["test_bleu_beam5"] = beam5_bleu(corpus.tokenizer, outputs, refs)
    result["beam5_tokens"] = [tokens for tokens, _ in outputs]
    return result


def compose_config(name: str, args):
    overrides = [*MODELS[name], f"trainer.device={args.device}", f"trainer.seed={args.seed}"]
    if args.threads:
        overrides.append(f"trainer.num_threads={args.threads}")
    if args.data_root:
        overrides.append(f"data.root={args.data_root}")
    overrides += args.set
    return composed_config(overrides)


def table(results: list[dict]) -> str:
    rows = [
        "| model | params | train tgt tok/s | train src tok/s | steps/s | padding eff. (src/tgt) "
        "| peak MB | greedy sent/s | beam5 sent/s | beam5 tgt tok/s | beam5 no-cache sent/s "
        "| decoded with |",
        "|" + "---|" * 12,
    ]
    for r in results:
        pad = r["padding_efficiency"]
        no_cache = r.get("decode_beam5_no_cache", {}).get("sentences_per_sec")
        rows.append(
            f"| {r['model']} | {r['params'] / 1e6:.1f}M | {r['train']['tgt_tokens_per_sec']:.0f} "
            f"| {r['train']['src_tokens_per_sec']:.0f} | {r['train']['steps_per_sec']:.2f} "
            f"| {pad['source']:.3f} / {pad['target']:.3f} | {r['peak_memory_mb']:.0f} "
            f"| {r['decode_beam1']['sentences_per_sec']:.1f} "
            f"| {r['decode_beam5']['sentences_per_sec']:.1f} "
            f"| {r['decode_beam5']['tgt_tokens_per_sec']:.0f} "
            f"| {f'{no_cache:.1f}' if no_cache else '-'} "
            f"| {'trained' if r['decoded_with'] != 'untrained weights' else 'untrained'} |"
        )
    return "\n".join(rows)


def engines_table(results: list[dict]) -> str:
    rows = [
        "| model | engine | greedy sent/s (tgt tok/s) | beam5 sent/s (tgt tok/s) "
        "| beam5 vs PyTorch | beam5 lines differing from PyTorch | test BLEU beam5 |",
        "|" + "---|" * 7,
    ]
    for r in results:
        for e in r.get("engines", []):
            speeds = {beam: e.get(f"decode_beam{beam}", r[f"decode_beam{beam}"]) for beam in (1, 5)}
            ratio = speeds[5]["sentences_per_sec"] / r["decode_beam5"]["sentences_per_sec"]
            cells = [
                f"{s['sentences_per_sec']:.1f} ({s['tgt_tokens_per_sec']:.0f})"
                for s in speeds.values()
            ]
            differing = e.get("beam5_lines_differing_from_pytorch", "-")
            rows.append(
                f"| {r['model']} | {e['engine']} | {cells[0]} | {cells[1]} | {ratio:.2f}x "
                f"| {differing} | {e['test_bleu_beam5']:.2f} |"
            )
    return "\n".join(rows)


def measure_in_child(one: str) -> dict:
    """run_one or run_ctranslate2 in a fresh process, so its memory and threads are its own."""
    child = [sys.executable, __file__, *sys.argv[1:], "--one", one]
    out = subprocess.run(child, capture_output=True, text=True, cwd=REPO)
    if out.returncode != 0:
        sys.exit(f"{one}: benchmark failed\n{out.stderr}")
    print(f"{one}: done", file=sys.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare_engines(result: dict, engines: list[dict]) -> None:
    """Attach the CTranslate2 rows to PyTorch's, counting beam-5 lines that differ."""
    ours = result.pop("beam5_tokens")
    for engine in engines:
        theirs = engine.pop("beam5_tokens")
        engine["beam5_lines_differing_from_pytorch"] = sum(
            a != b for a, b in zip(theirs, ours, strict=True)
        )
    pytorch = {"engine": "pytorch", "test_bleu_beam5": result.pop("test_bleu_beam5")}
    result["engines"] = [pytorch, *engines]


def arguments() -> argparse.Namespace:
    """The command line: which models, data, sizes and engines."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated")
    parser.add_argument("--data-root", help="directory holding multi30k/ (default: data/)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed training steps first")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--decode-repeats", type=int, default=1)
    parser.add_argument("--sentences", type=int, default=1000, help="test sentences decoded")
    parser.add_argument(
        "--no-cache", default="", help="comma-separated models to decode also without cache"
    )
    parser.add_argument(
        "--ctranslate2",
        default="",
        help="models (only transformer) whose --checkpoint is also decoded with CTranslate2",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config override for every model (repeatable): the shape of a checkpoint",
    )
    parser.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="MODEL=PATH",
        help="trained weights to decode with (repeatable)",
    )
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's choice)")
    parser.add_argument("--json", default="benchmark.json")
    # internal: measure one model (NAME) or one CTranslate2 export (NAME@QUANTIZATION) here
    parser.add_argument("--one", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = arguments()
    args.checkpoints = dict(item.split("=", 1) for item in args.checkpoint)
    if args.one:
        name, _, quantization = args.one.partition("@")
        one = run_ctranslate2(name, quantization, args) if quantization else run_one(name, args)
        print(json.dumps(one))
        return
    for name in filter(None, args.ctranslate2.split(",")):
        if name not in args.checkpoints:
            sys.exit(f"--ctranslate2 {name}: give its trained weights with --checkpoint")
    results = []
    for name in args.models.split(","):
        results.append(measure_in_child(name))
        if name in args.ctranslate2.split(","):
            # float16 where CTranslate2 has it (CUDA), float32 on a CPU; int8 on both.
            cuda = pick_device(args.device).type == "cuda"
            types = ("float16", "int8") if cuda else ("float32", "int8")
            engines = [measure_in_child(f"{name}@{q}") for q in types]
            compare_engines(results[-1], engines)
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO
    ).stdout.strip()
    report = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "git_commit": commit,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "results": results,
    }
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print(table(results))
    if any("engines" in r for r in results):
        print("\n" + engines_table(results))


if __name__ == "__main__":
    main()
