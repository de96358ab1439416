"""What an ensemble buys, in one command: train runs of one recipe that differ only in their
seed (runs already finished are kept, unfinished ones resume), then score test with each run's
final.pt (the run's own test decode) and with the ensemble of them all (mt.evaluate with
checkpoint=[...], the first run's decode settings), and print the markdown table.

    python scripts/ensemble.py --data-root DATA --recipe transformer_fast --seeds 1 2 3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def train(recipe: str, seed: int, run_dir: Path, args: argparse.Namespace) -> None:
    """Finish the run of this seed: keep it, resume it, or train it."""
    if (run_dir / "results.json").is_file():
        print(f"seed {seed}: finished in {run_dir}, kept", flush=True)
        return
    command = [sys.executable, "-m", "mt.train", f"+experiment={recipe}", f"trainer.seed={seed}"]
    command += [f"trainer.num_threads={args.threads}", f"hydra.run.dir={run_dir}", *args.set]
    if args.data_root:
        command.append(f"data.root={args.data_root}")
    if (run_dir / "checkpoints" / "last.pt").is_file():
        command.append("trainer.resume=true")
    print(" ".join(command), flush=True)
    if subprocess.run(command).returncode != 0:
        raise SystemExit(f"error: seed {seed}: training failed; rerun to resume it")


def ensemble_scores(finals: list[Path], runs: Path, args: argparse.Namespace) -> dict:
    """mt.evaluate of the ensemble of finals on the test split."""
    hyps = runs / f"ensemble-{len(finals)}.test.hyp"
    command = [sys.executable, "-m", "mt.evaluate", f"checkpoint=[{','.join(map(str, finals))}]"]
    command += [f"hyps={hyps}"]
    if args.data_root:
        command.append(f"data_root={args.data_root}")
    if subprocess.run(command).returncode != 0:
        raise SystemExit("error: evaluating the ensemble failed")
    return json.loads(Path(f"{hyps}.metrics.json").read_text(encoding="utf-8"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", help="data.root of every run (default: mt's own)")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="one run per seed here")
    parser.add_argument("--recipe", default="transformer_fast")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--threads", type=int, default=2, help="trainer.num_threads of every run")
    parser.add_argument("--set", nargs="*", default=[], help="overrides added to every run")
    args = parser.parse_args()
    rows, finals = [], []
    for seed in args.seeds:
        run_dir = args.runs / f"{args.recipe}-seed{seed}"
        train(args.recipe, seed, run_dir, args)
        results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
        finals.append(run_dir / results["final"])
        rows.append((f"seed {seed}", results["test"], results.get("commit") or ""))
    ensemble = ensemble_scores(finals, args.runs, args)
    rows.append((f"ensemble of {len(finals)}", ensemble, ""))
    print(f"| {args.recipe} | test BLEU | test chrF | commit |\n|---|---|---|---|")
    for name, scores, commit in rows:
        print(f"| {name} | {scores['bleu']:.2f} | {scores['chrf']:.2f} | {commit[:10]} |")


if __name__ == "__main__":
    main()
