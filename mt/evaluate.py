"""`python -m mt.evaluate checkpoint=PATH` (or `engine=ctranslate2 model_dir=DIR`): sacrebleu.

Decodes the test (or valid) split of the data the checkpoint was trained on, or any parallel
pair given as `src=FILE ref=FILE`, writes the detokenised hypotheses and a metrics.json, and
prints BLEU and chrF with their signatures: the same numbers `sacrebleu REF -i HYPS` gives.
Nothing it reads is overwritten; the hypotheses go beside the checkpoint unless hyps= says.

Examples:
    python -m mt.evaluate checkpoint=runs/tf/checkpoints/final.pt
    python -m mt.evaluate checkpoint=final.pt src=news.de ref=news.en decode.beam_size=10
"""

from __future__ import annotations

from omegaconf import DictConfig

from mt.common.errors import corpus_at, reported
from mt.config.store import register_configs, tool_config, tool_main
from mt.evaluation.evaluator import evaluate

register_configs("evaluate", __doc__)


@tool_main("evaluate")
def main(cfg: DictConfig) -> None:
    with reported(), corpus_at("data_root="):
        evaluate(tool_config(cfg))


if __name__ == "__main__":
    main()
