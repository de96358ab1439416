"""`python -m mt.export checkpoint=PATH out=DIR`: a Transformer as a CTranslate2 model.

CTranslate2 (the `deploy` extra) is the inference engine that fairseq, OpenNMT and
Marian models are deployed with; it runs the same network several times faster on a CPU,
faster still with int8 weights. The exported directory holds CTranslate2's model.bin and
vocabularies, the sentencepiece models (source.spm, target.spm) and mt.json (the training
config and where the weights came from), so `mt.translate engine=ctranslate2 model_dir=DIR`
and `mt.evaluate` need nothing else. The network is described with CTranslate2's own spec
API, layer by layer, so nothing is approximated: pre- or post-norm, our sinusoidal table,
the sqrt(d_model) embedding scale, tied or separate embeddings and output projection.

Examples:
    python -m mt.export checkpoint=runs/tf/checkpoints/final.pt out=runs/tf/ct2
    python -m mt.export checkpoint=final.pt out=ct2-int8 quantization=int8
"""

from __future__ import annotations

from omegaconf import DictConfig

from mt.common.errors import reported
from mt.config.store import register_configs, tool_config, tool_main
from mt.config.tools import ExportConfig
from mt.deploy.convert import export

register_configs("export", __doc__)


@tool_main("export")
def main(cfg: DictConfig) -> None:
    with reported():
        config: ExportConfig = tool_config(cfg)
        out = export(config.checkpoint, config.out, config.quantization.value, config.overwrite)
    print(f"exported {config.checkpoint} to {out} ({config.quantization.value})")


if __name__ == "__main__":
    main()
