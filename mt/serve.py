"""`python -m mt.serve checkpoints=[rnn.pt,bahdanau.pt,transformer.pt] [host=] [port=]`:
load the models once and serve the JSON API and the attention explorer (mt/server.py).

Needs the `serve` extra: pip install -e ".[serve]" (FastAPI and uvicorn)."""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from mt.config import check_ranges, register_configs, to_object
from mt.errors import MTError, reported
from mt.tool_config import ServeConfig
from mt.translator import Translator

register_configs()


def model_label(path: Path) -> str:
    """runs/tf/checkpoints/best.pt -> "tf"; model.pt -> "model"."""
    return path.parent.parent.name if path.parent.name == "checkpoints" else path.stem


def unique_labels(paths: list[Path]) -> list[str]:
    labels = [model_label(p) for p in paths]
    return [
        label if labels.count(label) == 1 else f"{label}-{labels[:k].count(label) + 1}"
        for k, label in enumerate(labels)
    ]


def load_models(config: ServeConfig) -> list:
    """Every checkpoint, loaded once, as a served model."""
    from mt.server import Served

    paths = [Path(p) for p in ([config.checkpoint] if config.checkpoint else [])]
    paths += [Path(p) for p in config.checkpoints]
    if not paths:
        raise MTError("checkpoint=PATH or checkpoints=[A.pt,B.pt]: no model to serve")
    return [
        Served(name, str(path), Translator.from_checkpoint(path, config.device))
        for path, name in zip(paths, unique_labels(paths), strict=True)
    ]


def import_server():
    try:
        import uvicorn

        from mt import server
    except ImportError as e:
        raise MTError(
            f'mt.serve needs the serve extra ({e.name} is missing): pip install -e ".[serve]"'
        ) from None
    return uvicorn, server


@hydra.main(version_base="1.3", config_path="../configs", config_name="serve")
def main(cfg: DictConfig) -> None:
    with reported():
        config: ServeConfig = to_object(cfg)
        check_ranges("serve", config, shown="")
        uvicorn, server = import_server()
        models = load_models(config)
        limits = server.Limits(config.max_sentences, config.max_chars, config.max_beam_size)
        app = server.create_app(models, limits)
    names = ", ".join(m.name for m in models)
    print(f"serving {names} on http://{config.host}:{config.port}/", flush=True)
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning")


if __name__ == "__main__":
    main()
