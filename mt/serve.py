"""`python -m mt.serve checkpoints=[rnn.pt,bahdanau.pt,transformer.pt] [host=] [port=]`:
load the models once and serve the JSON API and the attention explorer (mt/serving/).

Reads the checkpoints (or mt.export directories) and writes nothing. Needs the `serve`
extra, FastAPI and uvicorn (from a clone: pip install -e ".[serve]").

Examples:
    python -m mt.serve checkpoint=runs/tf/checkpoints/final.pt     # http://127.0.0.1:8000/
    python -m mt.serve checkpoints=[runs/rnn/checkpoints/final.pt,runs/tf/checkpoints/final.pt]
"""

from __future__ import annotations

from omegaconf import DictConfig

from mt.common.errors import missing_extra, reported
from mt.config.store import register_configs, tool_config, tool_main
from mt.config.tools import ServeConfig

register_configs("serve", __doc__)


@tool_main("serve")
def main(cfg: DictConfig) -> None:
    with reported():
        config: ServeConfig = tool_config(cfg)
        try:  # the serve extra: FastAPI and uvicorn
            import uvicorn

            from mt.serving import app, connections, loading
        except ImportError as e:
            raise missing_extra("mt.serve", "serve", e.name) from None
        models = loading.load_models(config)
        served = app.create_app(models, config)
        protocol = connections.bounded_protocol(config.read_timeout_s)
    names = ", ".join(m.name for m in models)
    print(f"serving {names} on http://{config.host}:{config.port}/", flush=True)
    uvicorn.run(
        served,
        host=config.host,
        port=config.port,
        http=protocol,
        limit_concurrency=config.max_connections,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
