"""One source of truth: YAML holds only what differs from the schema, and every range rule
is bound to a field its schema has."""

from __future__ import annotations

import dataclasses
import shutil
import typing
from pathlib import Path

import pytest
import torch
from helpers import CONFIGS
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from mt.common.errors import MTError
from mt.common.ranges import at_least, check_ranges
from mt.config.schema import Config, DecodeConfig, DecodeOverrides, TrainSource
from mt.config.store import current_names, from_plain_dict, to_config, to_plain_dict
from mt.config.tools import TOOL_SCHEMAS
from mt.models import ARCHITECTURES, build_model, count_parameters
from mt.training.state import changed_settings

SCHEMAS = [
    Config,
    TrainSource,
    DecodeOverrides,
    *(f.type for f in dataclasses.fields(Config) if dataclasses.is_dataclass(f.type)),
    *(schema for schema, _ in ARCHITECTURES.values()),
    *TOOL_SCHEMAS.values(),
]


def leaves(node, prefix: str = ""):
    """(dotted key, value) of every scalar or list in a plain YAML mapping."""
    for key, value in node.items():
        if isinstance(value, dict):
            yield from leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def baseline_overrides(defaults: list) -> list[str]:
    """What an experiment's defaults list composes without the experiment's own values."""
    overrides = []
    for entry in defaults:
        if isinstance(entry, dict):  # `override /model: rnn`
            ((key, choice),) = entry.items()
            overrides.append(f"{key.removeprefix('override /')}={choice}")
        elif entry != "_self_":  # another experiment it builds on
            overrides.append(f"+experiment={entry}")
    return overrides


def baseline(path: Path, defaults: list, root: Path):
    """What path's values would be without path: the schema defaults, or for an experiment
    the composition of what it builds on."""
    group = path.parent.name
    if group == "model":
        schema, _ = ARCHITECTURES[path.stem]
        return OmegaConf.structured(schema)
    if group == "experiment":
        with initialize_config_dir(config_dir=str(root), version_base="1.3"):
            return compose("config", baseline_overrides(defaults))
    return OmegaConf.structured(Config if path.stem == "config" else TOOL_SCHEMAS[path.stem])


def restated(path: Path, root: Path = CONFIGS) -> list[str]:
    """Keys of path (a file under root) whose value equals the one they would have without
    path."""
    values = OmegaConf.to_container(OmegaConf.load(path))
    defaults = values.pop("defaults", [])
    values.pop("hydra", None)
    if not values:  # only a defaults list (and Hydra's own settings): nothing restated
        return []
    base = OmegaConf.to_container(baseline(path, defaults, root), enum_to_str=True)
    found = []
    for key, value in leaves(values):
        node = base
        for part in key.split("."):
            node = node.get(part, KeyError) if isinstance(node, dict) else KeyError
        if node is not KeyError and node == value:
            found.append(f"{path.relative_to(root)}: {key}={value}")
    return found


@pytest.mark.parametrize(
    "path", sorted(CONFIGS.rglob("*.yaml")), ids=lambda p: str(p.relative_to(CONFIGS))
)
def test_no_yaml_value_restates_what_it_would_be_anyway(path):
    assert restated(path) == []


def test_the_restatement_check_catches_a_restated_default(tmp_path):
    shutil.copytree(CONFIGS, tmp_path, dirs_exist_ok=True)
    model = tmp_path / "model" / "transformer.yaml"
    model.write_text(model.read_text() + "d_model: 256\nff_dim: 64\n")
    experiment = tmp_path / "experiment" / "transformer_fast.yaml"
    # transformer_fast builds on transformer: its learning rate, restated, changes nothing.
    experiment.write_text(experiment.read_text().replace("trainer:\n", "trainer:\n  lr: 1.0e-3\n"))
    assert restated(model, tmp_path) == ["model/transformer.yaml: d_model=256"]
    assert restated(experiment, tmp_path) == ["experiment/transformer_fast.yaml: trainer.lr=0.001"]


EXPERIMENTS = sorted(path.stem for path in (CONFIGS / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_its_deltas_arrive(experiment):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        composed = compose("config", [f"+experiment={experiment}"])
    own = OmegaConf.to_container(OmegaConf.load(CONFIGS / "experiment" / f"{experiment}.yaml"))
    own.pop("defaults", None)
    for key, value in leaves(own):
        assert OmegaConf.select(composed, key) == value, key


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: s.__name__)
def test_every_range_rule_names_a_field_of_its_schema(schema):
    names = {f.name for f in dataclasses.fields(schema)}
    assert set(getattr(schema, "RANGES", {})) <= names


def numeric_fields(schema) -> set[str]:
    hints = typing.get_type_hints(schema)
    numbers = {int, float, int | None, float | None}
    return {f.name for f in dataclasses.fields(schema) if hints[f.name] in numbers}


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: s.__name__)
def test_every_numeric_field_has_a_range(schema):
    unchecked = numeric_fields(schema) - set(getattr(schema, "RANGES", {}))
    assert unchecked == set()


# Counts that bound what is read, not what is allocated, and seeds: a huge one is harmless.
UNBOUNDED = {"seed", "train_limit", "spm_sample"}


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: s.__name__)
def test_every_size_has_an_upper_bound(schema):
    hints = typing.get_type_hints(schema)
    sizes = {name for name in numeric_fields(schema) if hints[name] in (int, int | None)}
    rules = getattr(schema, "RANGES", {})
    unbounded = {name for name in sizes - UNBOUNDED if rules[name][0](10**12)}
    assert unbounded == set()


def test_the_range_walk_sees_a_numeric_field_without_a_rule():
    @dataclasses.dataclass
    class Tool:
        lines_per_batch: int = 1000
        name: str = "x"

    assert numeric_fields(Tool) == {"lines_per_batch"}


def test_a_rule_naming_no_field_fails_instead_of_passing_silently():
    @dataclasses.dataclass
    class Renamed:
        warmup: int = 0  # once called warmup_steps
        RANGES = {"warmup_steps": at_least(1)}

    with pytest.raises(AttributeError, match="warmup_steps"):
        check_ranges(Renamed(), "trainer.")


def test_a_value_out_of_range_is_named_with_its_prefix():
    expected = r"^data.train_sources\[0\].weight=0: must be in \(0, 1000\]$"
    with pytest.raises(MTError, match=expected):
        check_ranges(TrainSource(name="x", weight=0), "data.train_sources[0].")


def test_decode_overrides_has_every_decode_setting_and_only_those():
    overrides = {f.name: f.default for f in dataclasses.fields(DecodeOverrides)}
    assert set(overrides) == {f.name for f in dataclasses.fields(DecodeConfig)}
    assert set(overrides.values()) == {None}  # none given: the checkpoint's own


@pytest.mark.parametrize("weight", [float("inf"), 1e9, 0.0, float("nan")])
def test_a_source_weight_must_be_finite_and_bounded(weight):
    with pytest.raises(MTError, match=r"weight=.*: must be in \(0, 1000\]"):
        check_ranges(TrainSource(name="x", weight=weight), "data.train_sources[0].")


@pytest.mark.parametrize(
    ("experiment", "vocabulary", "low", "high"),
    [
        ("transformer_base", 1000, 44e6, 48e6),
        ("transformer_big", 1000, 176e6, 182e6),
        # The paper's 65M and 213M count a 37k vocabulary; at 32k:
        ("transformer_base", 32000, 60e6, 62e6),
        ("transformer_big", 32000, 208e6, 211e6),
    ],
)
def test_the_papers_recipes_build_the_papers_model_sizes(experiment, vocabulary, low, high):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        config = to_config(compose("config", [f"+experiment={experiment}"]))
    with torch.device("meta"):  # the shape alone: no memory for 200M weights
        model = build_model(config.model, vocabulary, vocabulary, joint=True)
    assert low <= count_parameters(model) <= high
    assert config.data.max_tokens * config.trainer.accumulate == 25000  # tokens per update


def test_data_max_len_must_fit_the_transformers_positions():
    overrides = ["+experiment=transformer", "data.max_len=512", "model.max_positions=128"]
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        composed = compose("config", overrides)
    with pytest.raises(MTError, match=r"data.max_len=512 exceeds model.max_positions=128"):
        to_config(composed)


def test_a_config_saved_before_a_rename_loads_and_resumes_under_the_new_name(tmp_path):
    # decode.cache became decode.incremental: a checkpoint, a results.json or a run's
    # config.yaml that still says cache is read under today's name, with its value.
    schema, _ = ARCHITECTURES["transformer"]
    plain = to_plain_dict(Config(model=schema()))
    saved = {**plain, "decode": {**plain["decode"], "cache": False}}
    del saved["decode"]["incremental"]
    assert from_plain_dict(saved).decode.incremental is False
    now = {**plain, "decode": {**plain["decode"], "incremental": False}}
    assert changed_settings(current_names(saved), now) == []
