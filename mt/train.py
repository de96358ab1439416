"""Entry point: `python -m mt.train +experiment=transformer [overrides]`.

Under torchrun (`torchrun --nproc_per_node=N -m mt.train ...`) every process runs this; the
trainer joins the process group and shards the data (see mt/training/distributed.py)."""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from mt.common.errors import corpus_at, reported
from mt.config.store import config_dir, register_configs, to_config
from mt.training import distributed
from mt.training.trainer import train

register_configs()


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
