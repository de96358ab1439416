"""Regenerate the results table with one command: train every recipe for its fixed step
budget, choose each model on valid (checkpoint averaging and length penalty, as the recipes
set trainer.average_last and trainer.length_penalties), test it with beam search, and write
the table from the runs' results.json files into README.md and docs/results.md.

    python scripts/results.py --data-root DATA --readme README.md docs/results.md

A row whose run finished (results.json) is kept, one that stopped half-way resumes from its
last.pt: rerunning the command completes the table. Delete runs/<row> to train a row again.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from mt.common.errors import MTError
from mt.common.files import write_text
from mt.training.comparison import markdown_table, row

# Row name -> the README's label and the recipe's overrides (every budget is in steps).
RECIPES = {
    "transformer": ("Transformer", ["+experiment=transformer"]),
    "transformer-fast": ("Transformer, fast recipe", ["+experiment=transformer_fast"]),
    "bahdanau": ("Bahdanau attention", ["+experiment=bahdanau"]),
    "rnn": ("RNN, no attention", ["+experiment=rnn"]),
    "transformer-en-de": (
        "Transformer, en→de",
        ["+experiment=transformer", "data.src_lang=en", "data.tgt_lang=de"],
    ),
}
BEGIN, END = "<!-- results table: scripts/results.py -->", "<!-- end of results table -->"


def train_command(name: str, args: argparse.Namespace) -> list[str] | None:
    """The mt.train command that finishes row name, or None when it has finished."""
    run_dir = args.runs / name
    if (run_dir / "results.json").is_file():
        return None
    command = [sys.executable, "-m", "mt.train", *RECIPES[name][1], *args.set]
    if args.data_root:
        command.append(f"data.root={args.data_root}")
    command.append(f"trainer.num_threads={args.threads}")
    command.append(f"hydra.run.dir={run_dir}")
    if (run_dir / "checkpoints" / "last.pt").is_file():
        command.append("trainer.resume=true")
    return command


def table(names: list[str], runs: Path) -> str:
    """The markdown table of the named rows, labelled, from their results.json files."""
    rows = []
    for name in names:
        cells = row(runs / name / "results.json")
        cells[0] = f"{RECIPES[name][0]} (`{name}`)"
        rows.append(cells)
    return markdown_table(rows)


def replace_block(readme: Path, text: str) -> None:
    """Put text between the README's table markers (written to a temporary name, renamed)."""
    content = readme.read_text(encoding="utf-8")
    if BEGIN not in content or END not in content:
        raise MTError(f"{readme}: no '{BEGIN}' ... '{END}' block to replace")
    head, rest = content.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    write_text(readme, f"{head}{BEGIN}\n{text}\n{END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", help="data.root of every run (default: mt's own)")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="one run per row here")
    parser.add_argument("--only", nargs="+", choices=list(RECIPES), default=list(RECIPES))
    parser.add_argument("--threads", type=int, default=2, help="trainer.num_threads of every run")
    parser.add_argument("--set", nargs="*", default=[], help="overrides added to every run")
    parser.add_argument(
        "--readme", type=Path, nargs="+", default=[], help="replace the table block of these"
    )
    args = parser.parse_args()
    for name in args.only:
        command = train_command(name, args)
        if command is None:
            print(f"{name}: finished in {args.runs / name}, kept", flush=True)
            continue
        print(f"{name}: {' '.join(command)}", flush=True)
        if subprocess.run(command).returncode != 0:
            raise SystemExit(f"error: {name}: training failed; rerun to resume it")
    # The table keeps every finished row, not only those this call trained.
    text = table([n for n in RECIPES if (args.runs / n / "results.json").is_file()], args.runs)
    print(text)
    (args.runs / "results.md").write_text(text + "\n", encoding="utf-8")
    for readme in args.readme:
        replace_block(readme, text)


if __name__ == "__main__":
    try:
        main()
    except MTError as e:
        raise SystemExit(f"error: {e}") from None
