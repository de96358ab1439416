"""`python -m mt.score checkpoint=PATH src=FILE ref=FILE [output=FILE]`: the model's
log-probability of given translations, line for line, as

    LOG_PROB<TAB>LOG_PROB_PER_TOKEN<TAB>TOKENS

where TOKENS counts the reference's subwords and the EOS after them; then a summary line with
the corpus perplexity, exp(-sum of LOG_PROB / sum of TOKENS), on stdout (on stderr when the
scores go to stdout). For filtering a noisy corpus or reranking an n-best list; a list of
checkpoints scores with their ensemble.

Examples:
    python -m mt.score checkpoint=final.pt src=corpus.de ref=corpus.en output=scores.tsv
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig

from mt.common.errors import reported
from mt.common.files import refuse_overwriting_inputs, write_text
from mt.config.schema import Engine
from mt.config.store import register_configs, tool_config, tool_main
from mt.config.tools import ScoreConfig, model_inputs, model_source
from mt.data.readers import read_aligned
from mt.decoding.likelihood import score_lines, summary
from mt.deploy.engine import open_translator

register_configs("score", __doc__)


@tool_main("score")
def main(cfg: DictConfig) -> None:
    with reported():
        config: ScoreConfig = tool_config(cfg)
        key, models = model_source(config.checkpoint, Engine.torch, None)
        src, ref = Path(config.src), Path(config.ref)
        if config.output is not None:
            inputs = {**model_inputs(key, models), "src": src, "ref": ref}
            refuse_overwriting_inputs({"output": Path(config.output)}, inputs)
        sources, references = read_aligned(src, ref)
        translator = open_translator(Engine.torch, models, config.device)
        found = translator.score(sources, references, config.max_tokens, config.tgt_lang)
        if config.output is None:
            sys.stdout.write(score_lines(found))
            print(summary(found), file=sys.stderr)
            return
        write_text(Path(config.output), score_lines(found))
    print(summary(found))


if __name__ == "__main__":
    main()
