"""`python -m mt.train +experiment=transformer [overrides]`: train, choose on valid, test.

Reads the corpus (Multi30k de-en by default, downloaded into ./data when missing; data.root
for another place), caches it, trains the recipe, validates every trainer.valid_every steps,
chooses the reported model on valid and decodes the test split. Writes everything into its
run directory (hydra.run.dir, default outputs/DATE/TIME): train.log, config.yaml, tb/
(TensorBoard), checkpoints/ (last.pt, best.pt, final.pt), {valid,test}.hyp.LANG and
results.json. A trained or busy run directory is refused; trainer.resume=true continues one.
Under torchrun (`torchrun --nproc_per_node=N -m mt.train ...`) every process runs this; the
trainer joins the process group and shards the data (see mt/training/distributed.py).

Examples:
    python -m mt.train +experiment=transformer hydra.run.dir=runs/tf
    python -m mt.train +experiment=rnn data.src_lang=fr data.tgt_lang=en trainer.max_steps=2000
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from mt.common.errors import corpus_at, reported
from mt.config.store import config_dir, register_configs, to_config
from mt.training import distributed
from mt.training.trainer import train

register_configs("train", __doc__, groups=True)


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def main(cfg: DictConfig) -> float:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    with reported(), corpus_at("data.root"):
        config = to_config(cfg)
        saved = run_dir / "config.yaml"  # the settings the run started with: a resume keeps them
        if distributed.is_main() and not (config.trainer.resume and saved.is_file()):
            saved.write_text(OmegaConf.to_yaml(cfg, resolve=True))
        results = train(config, run_dir)
    # The value a Hydra sweeper would maximise; under torchrun only rank 0 has results.
    return results["valid"]["bleu"] if results else None


if __name__ == "__main__":
    main()
