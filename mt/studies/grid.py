"""A study's runs: each row once per seed, in <runs>/<row>-seed<k>, with the overrides it
trains with; a finished run is kept, and a run trained with other settings is refused rather
than reused."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from mt.common.errors import MTError
from mt.config.schema import Config
from mt.config.store import config_dir, current_names, register_configs
from mt.evaluation.results import RESULTS, read_results
from mt.studies.spec import Study, StudyRow, row_overrides, row_seeds
from mt.training.state import flat

# Settings of where and how a run trains, not of what it learns: a run keeps its place in a
# study when they differ (another data root, thread count, a resume).
LOCAL_KEYS = ("data.root", "data.cache_dir", "trainer.num_threads", "trainer.resume")


@dataclass
class Run:
    row: StudyRow
    seed: int
    directory: Path
    overrides: list[str]
    direction: str | None = None  # the multilingual model's direction this view compares

    @cached_property
    def results(self) -> dict:
        """The finished run's results.json, read once (a report reads it many times)."""
        return read_results(self.directory / RESULTS)

    @property
    def test(self) -> dict:
        """The test scores this row compares: a multilingual run's of the row's direction."""
        return self.scores("test")

    @property
    def valid(self) -> dict:
        return self.scores("valid")

    def scores(self, split: str) -> dict:
        split_scores = self.results[split]
        if not self.direction:
            return split_scores
        # Valid has no zero-shot directions (nor, before 2026-12-04, any per direction).
        if split == "valid" and self.direction not in split_scores.get("directions", {}):
            return dict.fromkeys(("bleu", "chrf"))
        if self.direction not in split_scores["directions"]:
            have = list(split_scores["directions"])
            raise MTError(f"{self.directory}: no direction {self.direction}; it has {have}")
        return split_scores["directions"][self.direction]

    @property
    def compared(self) -> str:
        """The direction whose test set this run is scored on, e.g. de-en."""
        if self.direction:
            return self.direction
        data = self.results["config"]["data"]
        if data.get("directions"):
            raise MTError(
                f"rows: {self.row.name}: {self.directory} is multilingual; give the row the "
                f"directions it compares (of {data['directions']} and their zero-shot ones)"
            )
        return f"{data['src_lang']}-{data['tgt_lang']}"

    @property
    def final(self) -> Path:
        return self.directory / self.results["final"]


def study_runs(study: Study, runs: Path) -> list[Run]:
    """Every run of the study, seed by seed (each seed's rows first, so a partial study
    already compares every row)."""
    seeds = sorted({seed for row in study.rows for seed in row_seeds(study, row)})
    return [
        Run(row, seed, runs / f"{row.name}-seed{seed}", row_overrides(study, row, seed, runs))
        for seed in seeds
        for row in study.rows
        if seed in row_seeds(study, row)
    ]


def views(run: Run) -> list[Run]:
    """The run once per direction its row compares (a multilingual row's), else as it is."""
    return [replace(run, direction=d) for d in run.row.directions] or [run]


def composed(overrides: list[str]) -> dict:
    """The resolved training config these overrides give, as mt.train would compose it."""
    return composed_and_defaults(overrides)[0]


def composed_and_defaults(overrides: list[str]) -> tuple[dict, dict]:
    """composed(overrides), and the schemas' defaults for the architecture they choose (every
    value unset): one composition for both, Hydra's being the slow part."""
    register_configs()
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        config = compose("config", overrides=overrides)
    model = OmegaConf.to_object(config.model)
    defaults = OmegaConf.structured(Config(model=type(model)()))
    return tuple(
        OmegaConf.to_container(c, resolve=True, enum_to_str=True) for c in (config, defaults)
    )


def check_same_settings(run: Run) -> None:
    """Refuse a run directory trained with settings other than the study's for it; a setting
    its config.yaml lacks (one added since it trained) counts as the schema's default."""
    saved = run.directory / "config.yaml"
    if not saved.is_file():
        return
    try:
        have = flat(current_names(OmegaConf.to_container(OmegaConf.load(saved), resolve=True)))
    except (UnicodeDecodeError, ValueError, yaml.YAMLError) as e:
        raise MTError(f"{saved}: not a run's config ({type(e).__name__})") from None
    want, default = (flat(c) for c in composed_and_defaults(run.overrides))
    have = {**{k: default[k] for k in want.keys() - have.keys() if k in default}, **have}
    root = str(run.directory.parent.resolve())
    trained_in = trained_root(run)
    for key in sorted(set(have) | set(want)):
        if key in LOCAL_KEYS:
            continue
        if not same_setting(have.get(key), want.get(key), root, trained_in):
            raise MTError(
                f"{run.directory}: trained with {key}={have.get(key)}, the study asks "
                f"{want.get(key)}; give the row another name or the study another --runs"
            )


def trained_root(run: Run) -> str | None:
    """The runs' directory the run trained in, as its results.json records it (None for an
    unfinished run, or one finished before 2026-12-07)."""
    if not (run.directory / "results.json").is_file():
        return None
    directory = run.results.get("directory")
    return str(Path(directory).parent) if directory else None


def same_setting(have: object, want: object, root: str, trained_in: str | None = None) -> bool:
    """Equal, or paths to the same place in the runs' directory wherever it was when the run
    trained (trainer.init_from={runs}/parent-seed1 of runs moved, or kept without weights),
    also inside lists and mappings (data.train_sources' roots). Where the run recorded that
    directory (trained_in), a path must be exactly that place in it; an older run's must end
    as the study's does."""
    if isinstance(have, dict) and isinstance(want, dict):
        return have.keys() == want.keys() and all(
            same_setting(have[k], want[k], root, trained_in) for k in want
        )
    if isinstance(have, list) and isinstance(want, list):
        pairs = zip(have, want, strict=False)
        same = all(same_setting(h, w, root, trained_in) for h, w in pairs)
        return len(have) == len(want) and same
    if have == want:
        return True
    if not (isinstance(want, str) and want.startswith(root + os.sep) and isinstance(have, str)):
        return False
    inside = want[len(root) :]
    return have == trained_in + inside if trained_in else have.endswith(inside)
