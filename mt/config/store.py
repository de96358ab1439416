"""Hydra's side of the schemas: where the YAML lies, registration, and conversion to and
from the typed dataclasses (at the command line) and plain dicts (in checkpoints)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

import hydra
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

import mt
from mt.common.errors import MTError
from mt.common.ranges import check_ranges
from mt.config.checks import check_config
from mt.config.schema import Config
from mt.config.tools import TOOL_SCHEMAS
from mt.models import ARCHITECTURES, model_name


def config_dir() -> str:
    """The YAML configs: shipped inside the installed package (mt/configs, built from the
    repository's configs/ into the wheel), or the checkout's top-level configs/."""
    package = Path(mt.__file__).resolve().parent
    shipped = package / "configs"
    return str(shipped if shipped.is_dir() else package.parent / "configs")


# A Hydra command's --help: what it does, reads and writes, with examples (its docstring),
# then its settings; "$CONFIG" and "$APP_CONFIG_GROUPS" are filled in by Hydra.
HELP = """{about}
{groups}
== Settings (KEY=VALUE on the command line; these are the defaults) ==

$CONFIG
Hydra's own options (multirun, tab completion): --hydra-help"""
GROUPS = """
== Config groups (+experiment=NAME picks a recipe, model=NAME an architecture) ==

$APP_CONFIG_GROUPS"""


def tool_main(config_name: str) -> Callable[[Callable], Callable[[], None]]:
    """hydra.main for a tool that reads its model's settings from the checkpoint: a recipe
    (+experiment=NAME) is refused in one line naming why, before Hydra would fail on it."""

    def decorate(function: Callable) -> Callable[[], None]:
        composed = hydra.main(
            version_base="1.3", config_path=config_dir(), config_name=config_name
        )(function)

        @functools.wraps(function)
        def main() -> None:
            given = [a for a in sys.argv[1:] if a.lstrip("+~").startswith("experiment=")]
            if given:
                print(
                    f"error: {given[0]}: mt.{config_name} takes no recipe; the model's settings "
                    "come from its checkpoint (recipes are for mt.train and mt.prepare)",
                    file=sys.stderr,
                )
                sys.exit(2)
            composed()

        return main

    return decorate


# Each Hydra command's --help node (hydra/help/<command>, named by its YAML's defaults): its
# own text once it has registered it, a bare one before (a test composing several commands'
# configs in one process must find every node).
HYDRA_COMMANDS = (
    "train",
    "evaluate",
    "translate",
    "score",
    "prepare",
    "export",
    "serve",
    "distill",
)
_help_texts: dict[str, str] = {}


def register_configs(command: str | None = None, about: str = "", groups: bool = False) -> None:
    """Make the schemas known to Hydra so YAML files can name them in their defaults, and
    a command's --help (about: its docstring; groups: it takes +experiment)."""
    store = ConfigStore.instance()
    if command is not None:
        _help_texts[command] = HELP.format(about=about.strip(), groups=GROUPS if groups else "")
    for name in HYDRA_COMMANDS:
        text = _help_texts.get(name, HELP.format(about=f"python -m mt.{name}", groups=""))
        # OmegaConf would read ${...} as an interpolation; Hydra fills in $CONFIG itself.
        node = {
            "app_name": "mt",
            "header": "",
            "footer": "",
            "template": text.replace("${", "\\${"),
        }
        store.store(group="hydra/help", name=name, node=node, package="hydra.help")
    store.store(name="base_config", node=Config)
    for name, schema in TOOL_SCHEMAS.items():
        store.store(name=f"{name}_schema", node=schema)
    for name, (schema, _) in ARCHITECTURES.items():
        store.store(group="model", name=f"{name}_schema", node=schema)


def to_object(cfg: DictConfig) -> Any:
    """Hydra's composed config as the typed dataclasses, refusing keys no schema declares and
    naming a required key left out."""
    try:
        obj = OmegaConf.to_object(cfg)
    except MissingMandatoryValue as e:
        raise MTError(f"{e.full_key}: required (give {e.full_key}=...)") from None
    refuse_unknown_keys(cfg, obj)
    return obj


def tool_config(cfg: DictConfig) -> Any:
    """A tool's composed config as its typed schema, every range checked (its decode
    overrides' too): what each command does first."""
    config = to_object(cfg)
    check_ranges(config, "")
    if hasattr(config, "decode"):
        check_ranges(config.decode, "decode.")
    return config


def refuse_unknown_keys(cfg: DictConfig, obj: Any, prefix: str = "") -> None:
    """`+model.num_head=4` adds a key beside the schema's own, which to_object would drop
    without a word: name it instead, as a plain typo is named."""
    known = {f.name for f in fields(obj)}
    for key in cfg.keys():
        if key not in known:
            raise MTError(f"{prefix}{key}: not a key of {type(obj).__name__}")
        value = getattr(obj, key)
        if is_dataclass(value) and isinstance(cfg[key], DictConfig):
            refuse_unknown_keys(cfg[key], value, f"{prefix}{key}.")


def to_config(cfg: DictConfig) -> Config:
    """Convert Hydra's composed config into plain dataclasses and check it."""
    config = to_object(cfg)
    check_config(config)
    return config


def composed_config(overrides: list[str]) -> Config:
    """The training config these overrides give, as mt.train composes it, typed: for scripts
    that build a trainer or a model as a run would."""
    register_configs()
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        return to_config(compose("config", overrides=overrides))


def to_plain_dict(config: Config) -> dict:
    """Config as plain Python types (for checkpoints and results)."""
    plain = OmegaConf.to_container(OmegaConf.structured(config), enum_to_str=True)
    plain["model_name"] = model_name(config.model)
    return plain


# Settings renamed since runs were saved, old dotted key -> new: a stored config is read under
# today's names, so an older checkpoint still loads, resumes and reports.
RENAMED = {"decode.cache": "decode.incremental"}


def current_names(plain: dict) -> dict:
    """A stored config (checkpoint, results.json, config.yaml) with renamed settings moved to
    today's names."""
    plain = dict(plain)
    for old, new in RENAMED.items():
        (group, key), (new_group, new_key) = old.split("."), new.split(".")
        if isinstance(plain.get(group), dict) and key in plain[group]:
            value = plain[group][key]
            plain[group] = {k: v for k, v in plain[group].items() if k != key}
            plain[new_group] = {**plain.get(new_group, {}), new_key: value}
    return plain


def from_plain_dict(plain: dict) -> Config:
    """Rebuild a typed Config from to_plain_dict's output (of any mt version since renames)."""
    plain = current_names(plain)
    schema, _ = ARCHITECTURES[plain.pop("model_name")]
    merged = OmegaConf.merge(OmegaConf.structured(Config(model=schema())), plain)
    return OmegaConf.to_object(merged)
