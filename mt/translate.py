"""`python -m mt.translate checkpoint=PATH`: raw text in, translations out, line for line.

Reads stdin (or input=FILE, plain or .gz) in chunks of lines_per_batch lines, so a pipe
streams, and writes one translation per input line to stdout (or output=FILE); an empty
input line gives an empty output line. A line of several sentences (a paragraph) is split
into sentences, each translated, and joined again with the line's spacing (segment=false:
each line is one input; mt/decoding/documents.py). With decode.nbest=N > 1 (or prefix=)
each line is one input, and every input line gives N lines in the format

    LINE<TAB>SCORE<TAB>TRANSLATION

LINE counts input lines from 0; SCORE is the beam's ranking score, log-probability divided
by the length penalty (higher is better); the N lines of one input come best first.

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
        translator.decoding(config.decode)
        translator.target_tag(config.tgt_lang)  # a language the model cannot produce: now
        prefixes = read_prefixes(config)
        with ExitStack() as stack:
            if config.input is None:
                lines, name = sys.stdin.buffer, "<stdin>"
            else:
                lines, name = open_file(Path(config.input), "rb", stack), config.input
            if config.output is None:
                translate_stream(translator, config, lines, sys.stdout, name, prefixes)
                return
            output = Path(config.output)
            given = {"input": config.input, "prefix": config.prefix}
            inputs = {key: Path(path) for key, path in given.items() if path is not None}
            refuse_overwriting_inputs(
                {"output": output}, {**model_inputs(model_key, models), **inputs}
            )
            try:
                with replaced_on_success(output) as tmp, ExitStack() as sink_stack:
                    sink = open_file(tmp, "w", sink_stack)
                    translate_stream(translator, config, lines, sink, name, prefixes)
            except OSError as e:  # reading is MTError by now: this is the output's
                raise os_error(output, e, "the translations") from None


if __name__ == "__main__":
    main()
