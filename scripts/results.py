"""Regenerate the results table with one command: train every recipe for its fixed step
budget, choose each model on valid (checkpoint averaging and length penalty, as the recipes
set trainer.average_last and trainer.length_penalties), test it with beam search, and write
the table from the runs' results.json files into README.md and docs/results.md.

    python scripts/results.py --data-root DATA --readme README.md docs/results.md
    python scripts/results.py --data-root DATA --multilingual --readme docs/multilingual.md

With --multilingual: the four bilingual fast-recipe runs (de-en, en-de, fr-en, en-fr) and the
one multilingual model of the same size, per direction, and the zero-shot directions de->fr
and fr->de against pivoting through English with the bilingual models (de->en->fr).

A row whose run finished (results.json) is kept, one that stopped half-way resumes from its
last.pt: rerunning the command completes the table. Delete runs/<row> to train a row again.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from mt.common.errors import MTError
from mt.common.files import replace_block
from mt.config.checks import parse
from mt.config.store import from_plain_dict
from mt.data.directions import direction_config
from mt.data.readers import read_split
from mt.decoding.scoring import corpus_scores
from mt.decoding.translator import Translator
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
    **{
        f"transformer-fast-{src}-{tgt}": (
            f"Transformer, fast recipe, {src}→{tgt}",
            ["+experiment=transformer_fast", f"data.src_lang={src}", f"data.tgt_lang={tgt}"],
        )
        for src, tgt in (("en", "de"), ("fr", "en"), ("en", "fr"))
    },
    "transformer-multilingual": (
        "Transformer, multilingual",
        ["+experiment=transformer_multilingual"],
    ),
}
DEFAULT_ROWS = ["transformer", "transformer-fast", "bahdanau", "rnn", "transformer-en-de"]
BEGIN, END = "<!-- results table: scripts/results.py -->", "<!-- end of results table -->"
# The multilingual comparison: its rows (a bilingual run per direction, de-en being the fast
# recipe's own row), and its table's markers.
BILINGUAL = {
    "de-en": "transformer-fast",
    "en-de": "transformer-fast-en-de",
    "fr-en": "transformer-fast-fr-en",
    "en-fr": "transformer-fast-en-fr",
}
MULTILINGUAL = [*BILINGUAL.values(), "transformer-multilingual"]
ML_BEGIN = "<!-- multilingual table: scripts/results.py --multilingual -->"
ML_END = "<!-- end of multilingual table -->"


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


def finished(name: str, runs: Path) -> dict:
    return json.loads((runs / name / "results.json").read_text(encoding="utf-8"))


def pivot_scores(runs: Path, data_root: str | None, src: str, tgt: str) -> dict:
    """test_2016_flickr src->tgt through English with the bilingual runs' final.pt files
    (src->en, then en->tgt), scored against the tgt references; kept in runs/ once done."""
    kept = runs / f"pivot-{src}-{tgt}.json"
    if kept.is_file():
        return json.loads(kept.read_text(encoding="utf-8"))
    legs = [BILINGUAL[f"{src}-en"], BILINGUAL[f"en-{tgt}"]]
    data = from_plain_dict(finished(legs[0], runs)["config"]).data
    data.root = data_root or data.root
    text, references = read_split(direction_config(data, f"{src}-{tgt}"), "test")
    for name in legs:  # src -> en, then en -> tgt
        final = runs / name / finished(name, runs)["final"]
        text = Translator.from_checkpoint(final).translate(text)
    scores = {k: v for k, v in corpus_scores(text, references).items() if k in ("bleu", "chrf")}
    kept.write_text(json.dumps(scores) + "\n", encoding="utf-8")
    return scores


def multilingual_table(runs: Path, data_root: str | None) -> str:
    """Test BLEU / chrF per direction: the bilingual models against the multilingual one, and
    for de->fr and fr->de, pivoting through English against zero-shot."""
    multi = finished("transformer-multilingual", runs)["test"]["directions"]
    rows = [
        (d, cell(finished(n, runs)["test"]), cell(multi[d], parse(d)[1]))
        for d, n in BILINGUAL.items()
    ]
    for src, tgt in (("de", "fr"), ("fr", "de")):
        pivot = f"pivot through en: {cell(pivot_scores(runs, data_root, src, tgt))}"
        rows.append((f"{src}-{tgt}, zero-shot", pivot, cell(multi[f"{src}-{tgt}"], tgt)))
    head = ["| direction | 4 bilingual models | 1 multilingual model |", "|---|---|---|"]
    return "\n".join(head + [f"| {a} | {b} | {c} |" for a, b, c in rows])


def cell(scores: dict, lang: str = "") -> str:
    """BLEU / chrF, and with lang the share of the output in it when the scores have it."""
    text = f"{scores['bleu']:.2f} / {scores['chrf']:.2f}"
    if lang and "percent_in_target" in scores:
        text += f" ({scores['percent_in_target']:.0f}% in {lang})"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", help="data.root of every run (default: mt's own)")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="one run per row here")
    parser.add_argument("--only", nargs="+", choices=list(RECIPES), default=DEFAULT_ROWS)
    parser.add_argument(
        "--multilingual", action="store_true", help="the multilingual comparison's rows and table"
    )
    parser.add_argument("--threads", type=int, default=2, help="trainer.num_threads of every run")
    parser.add_argument("--set", nargs="*", default=[], help="overrides added to every run")
    parser.add_argument(
        "--readme", type=Path, nargs="+", default=[], help="replace the table block of these"
    )
    args = parser.parse_args()
    if args.multilingual:
        args.only = MULTILINGUAL
    for name in args.only:
        command = train_command(name, args)
        if command is None:
            print(f"{name}: finished in {args.runs / name}, kept", flush=True)
            continue
        print(f"{name}: {' '.join(command)}", flush=True)
        if subprocess.run(command).returncode != 0:
            raise SystemExit(f"error: {name}: training failed; rerun to resume it")
    if args.multilingual:  # the scores per direction, then what each run took
        text = (
            f"{multilingual_table(args.runs, args.data_root)}\n\n{table(MULTILINGUAL, args.runs)}"
        )
        (args.runs / "multilingual.md").write_text(text + "\n", encoding="utf-8")
        markers = (ML_BEGIN, ML_END)
    else:  # the table keeps every finished row, not only those this call trained
        finished = [n for n in DEFAULT_ROWS if (args.runs / n / "results.json").is_file()]
        text = table(finished, args.runs)
        (args.runs / "results.md").write_text(text + "\n", encoding="utf-8")
        markers = (BEGIN, END)
    print(text)
    for readme in args.readme:
        replace_block(readme, text, *markers)


if __name__ == "__main__":
    try:
        main()
    except MTError as e:
        raise SystemExit(f"error: {e}") from None
