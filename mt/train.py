"""Entry point: `python -m mt.train +experiment=transformer [overrides]`."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from mt.config import register_configs, to_config
from mt.errors import MTError
from mt.trainer import train

register_configs()


@hydra.main(version_base="1.3", config_path="../configs", config_name="config")
def main(cfg: DictConfig) -> float:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        config = to_config(cfg)
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        results = train(config, run_dir)
    except MTError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    return results["valid"]["bleu"]  # the value a Hydra sweeper would maximise


if __name__ == "__main__":
    main()
