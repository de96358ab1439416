"""A model scored on a split of its own data or on any parallel pair: the hypotheses
and their metrics written beside it, sacreBLEU's BLEU, chrF and lowercased BLEU (mt.evaluate)."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path

from mt.common.errors import MTError
from mt.common.files import refuse_overwriting_inputs, write_text
from mt.common.ranges import check_ranges
from mt.config.checks import parse
from mt.config.schema import DataConfig
from mt.config.tools import EvaluateConfig, model_inputs, model_source
from mt.data.directions import direction_config
from mt.data.readers import read_aligned, read_split, run_corpus, source_files, split_name
from mt.decoding.documents import translate_lines
from mt.decoding.translator import Translator
from mt.deploy.engine import open_translator
from mt.evaluation.scores import corpus_scores
from mt.evaluation.search_errors import search_errors

log = logging.getLogger("mt")


def evaluation_data(cfg: EvaluateConfig, translator: Translator):
    """(name, source lines, reference lines, where they came from, how the language check
    names the source and the reference side)."""
    if (cfg.src is None) != (cfg.ref is None):
        raise MTError("give both src=FILE and ref=FILE, or neither to evaluate split=")
    if cfg.src is not None:
        src, refs = read_aligned(Path(cfg.src), Path(cfg.ref))
        name = Path(cfg.src).name.removesuffix(".gz")
        return name, src, refs, {"src": cfg.src, "ref": cfg.ref}, (cfg.src, cfg.ref)
    data = run_corpus(translator.config.data, cfg.data_root)
    name, origin = cfg.split.value, {"data": data.name, "root": data.root}
    if data.directions:  # a multilingual model: one direction of its corpus
        data = direction_config(data, evaluated_direction(cfg, translator))
        name = origin["direction"] = f"{cfg.split.value}.{data.src_lang}-{data.tgt_lang}"
    src, refs = read_split(data, cfg.split.value)
    return name, src, refs, origin, side_names(data, cfg.split.value)


def evaluated_direction(cfg: EvaluateConfig, translator: Translator) -> str:
    """The direction split= reads of a multilingual model: src_lang (by default the
    checkpoint's data.src_lang, or else the one language trained into tgt_lang) to tgt_lang."""
    data = translator.config.data
    tgt = translator.target_tag(cfg.tgt_lang)
    src = cfg.src_lang
    if src is None:
        into = [s for s, t in map(parse, data.directions) if t == tgt]
        src = data.src_lang if data.src_lang != tgt else (into[0] if len(into) == 1 else None)
        if src is None:
            raise MTError(f"src_lang: required for tgt_lang={tgt} (from {', '.join(into)}?)")
    if src == tgt:
        raise MTError(f"src_lang={src} and tgt_lang={tgt}: choose two languages")
    return f"{src}-{tgt}"


def side_names(data: DataConfig, split: str) -> tuple[str, str]:
    """How the language check names a split's source and target: their files when they are
    a file per language, else the corpus and the language."""
    files = source_files(data, split)
    if files is not None and len(files) == 2:
        return str(files[0]), str(files[1])
    where = f"{files[0]}" if files else f"{data.name} {split_name(data, split)}"
    return f"{where} ({data.src_lang} side)", f"{where} ({data.tgt_lang} side)"


def evaluate(cfg: EvaluateConfig) -> dict:
    check_ranges(cfg.decode, "decode.")
    model_key, model_paths = model_source(cfg.checkpoint, cfg.engine, cfg.model_dir)
    model_path = model_paths[0]  # the hypotheses go beside it
    translator = open_translator(cfg.engine, model_paths, cfg.device)
    decode = translator.decoding(cfg.decode)
    translator.target_tag(cfg.tgt_lang)  # a language the model cannot produce: one line now
    name, src, refs, origin, sides = evaluation_data(cfg, translator)
    if not src:
        raise MTError(f"nothing to evaluate: {origin} has no lines")
    hyps_path = Path(cfg.hyps or model_path.with_name(f"{model_path.stem}.{name}.hyp"))
    metrics_path = Path(cfg.metrics or hyps_path.with_name(hyps_path.name + ".metrics.json"))
    inputs = {key: Path(path) for key, path in (("src", cfg.src), ("ref", cfg.ref)) if path}
    refuse_overwriting_inputs(
        {"hyps": hyps_path, "metrics": metrics_path},
        {**model_inputs(model_key, model_paths), **inputs},
    )
    for side, named, lines in zip(("src", "tgt"), sides, (src, refs), strict=True):
        for warning in translator.language_warnings(named, lines, side, cfg.tgt_lang):
            log.warning("warning: %s", warning)
    # A sign of life where no bar is drawn (a log, a pipe); stdout carries the scores.
    print(f"decoding {len(src)} sentences of {name} (beam {decode.beam_size})", file=sys.stderr)
    hyps = translate_lines(translator, src, decode, 1, cfg.tgt_lang, cfg.segment, cfg.src_lang)
    scores = corpus_scores(hyps, refs)
    write_text(hyps_path, "".join(h + "\n" for h in hyps))
    metrics = {
        model_key: [str(p) for p in model_paths] if len(model_paths) > 1 else str(model_path),
        "engine": cfg.engine.value,
        **origin,
        "sentences": len(src),
        **scores,
        "segment": cfg.segment,
        "decode": asdict(decode),
        "hyps": str(hyps_path),
    }
    if cfg.search_errors:
        metrics["search_errors"] = search_errors(
            translator, src, refs, decode, cfg.search_errors, cfg.tgt_lang
        )
    write_text(metrics_path, json.dumps(metrics, indent=2) + "\n")
    print(f"BLEU {scores['bleu']:.2f} | {scores['signature']}")
    print(f"chrF {scores['chrf']:.2f} | {scores['chrf_signature']}")
    print(f"BLEU lowercased {scores['bleu_lc']:.2f} | {scores['bleu_lc_signature']}")
    for row in metrics.get("search_errors", []):
        print(
            f"beam {row['beam']}: BLEU {row['bleu']:.2f} | the reference: {row['exact']:.1%} | "
            f"search errors {row['search_errors']:.1%} | model errors {row['model_errors']:.1%}"
        )
    print(f"hypotheses: {hyps_path} | metrics: {metrics_path}")
    return metrics
