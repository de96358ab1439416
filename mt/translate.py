"""`python -m mt.translate checkpoint=PATH`: raw text in, translations out, line for line.

Reads stdin (or input=FILE, plain or .gz) in chunks of lines_per_batch lines, so a pipe
streams, and writes one translation per input line to stdout (or output=FILE); an empty
input line gives an empty output line. A line of several sentences (a paragraph) is split
into sentences, each translated, and joined again with the line's spacing (segment=false:
each line is one input; mt/decoding/documents.py). With decode.nbest=N > 1 (or prefix=,
record=) each line is one input, and every input line gives N lines in the format

    LINE<TAB>SCORE<TAB>TRANSLATION

LINE counts input lines from 0; SCORE is the beam's ranking score, log-probability divided
by the length penalty (higher is better); the N lines of one input come best first.

record=FILE keeps each line's beam search, one JSON line per input line: VisTools' beam-tree
shape (predicted_ids, beam_parent_ids, scores) and every step's kept, finished and pruned
candidates (mt/decoding/beam_history.py); one chunk of lines_per_batch lines' searches is held
in memory at a time.

Examples:
    echo "Ein Hund rennt." | python -m mt.translate checkpoint=runs/tf/checkpoints/final.pt
    python -m mt.translate checkpoint=final.pt input=news.de output=news.en decode.beam_size=8
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path

from omegaconf import DictConfig

from mt.common.errors import reported
from mt.common.files import os_error, refuse_overwriting_inputs, replaced_on_success
from mt.config.store import register_configs, tool_config, tool_main
from mt.config.tools import TranslateConfig, model_inputs, model_source
from mt.decoding.streaming import open_file, read_prefixes, translate_stream
from mt.deploy.engine import open_translator

register_configs("translate", __doc__)


@tool_main("translate")
def main(cfg: DictConfig) -> None:
    with reported():
        config: TranslateConfig = tool_config(cfg)
        model_key, models = model_source(config.checkpoint, config.engine, config.model_dir)
        # Load first: a bad checkpoint or setting must not leave an emptied output behind.
        translator = open_translator(config.engine, models, config.device)
        decode = translator.decoding(config.decode)
        if config.record is not None:
            translator.check_recordable(decode)
        translator.target_tag(config.tgt_lang)  # a language the model cannot produce: now
        prefixes = read_prefixes(config)
        given = {"input": config.input, "prefix": config.prefix}
        inputs = {key: Path(path) for key, path in given.items() if path is not None}
        written = {"output": config.output, "record": config.record}
        outputs = {key: Path(path) for key, path in written.items() if path is not None}
        refuse_overwriting_inputs(outputs, {**model_inputs(model_key, models), **inputs})
        try:
            with ExitStack() as stack:
                if config.input is None:
                    lines, name = sys.stdin.buffer, "<stdin>"
                else:
                    lines, name = open_file(Path(config.input), "rb", stack), config.input
                # Each output at a temporary name, renamed once all is written.
                sinks = {
                    key: open_file(stack.enter_context(replaced_on_success(path)), "w", stack)
                    for key, path in outputs.items()
                }
                sink, record = sinks.get("output", sys.stdout), sinks.get("record")
                translate_stream(translator, config, lines, sink, name, prefixes, record)
        except OSError as e:  # reading is MTError by now: this is an output's
            if not outputs:
                raise
            path = next(iter(outputs.values()))
            what = "the translations" if "output" in outputs else "the record"
            raise os_error(path, e, what) from None


if __name__ == "__main__":
    main()
