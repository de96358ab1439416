"""A study file (studies/*.yaml): rows of training overrides, each trained once per seed, and
what the report compares. Loaded into typed dataclasses; an unknown key, a duplicate row or a
baseline that is no row is refused in one line naming the file and key."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from yaml import YAMLError

from mt.common.errors import MTError
from mt.config.checks import parse
from mt.config.store import to_object

LONG_INPUT_MAX = 64  # sentences joined into one input: beyond it nothing fits max_len
SEARCH_BEAM_MAX = 100  # beam sizes of a search-error count


@dataclass
class StudyRow:
    name: str = MISSING  # its runs are <runs>/<name>-seed<k>, shared by every study naming it
    label: str | None = None  # the report's name for it (default: name)
    overrides: list[str] = field(default_factory=list)  # mt.train overrides of this row
    seeds: list[int] | None = None  # this row's own seeds (default: the study's)
    # A multilingual row's directions that are compared (each in its own section, e.g.
    # [de-en, de-fr]); none: the run's one direction.
    directions: list[str] = field(default_factory=list)
    # Rows (one direction each) whose models translate one after another, seed by seed: a row
    # that trains nothing, e.g. de->fr pivoting through English: [de_en, en_fr].
    pivot: list[str] = field(default_factory=list)


@dataclass
class Distilled:
    """A distilled corpus: the teacher row's seeds as one ensemble translating its training
    sources (mt.distill), at <runs>/distilled/<name>/; rows train on it by naming
    {distilled} as a root: data.train_sources=[{name: NAME, root: "{distilled}"}]."""

    name: str = MISSING
    teacher: str = MISSING  # a row of the study
    overrides: list[str] = field(default_factory=list)  # mt.distill's, e.g. decode.beam_size=5


@dataclass
class Study:
    title: str = MISSING
    rows: list[StudyRow] = MISSING
    seeds: list[int] = field(default_factory=lambda: [1])
    overrides: list[str] = field(default_factory=list)  # added to every row's
    baseline: str | None = None  # the row the others are tested against (default: the first)
    ensemble: bool = False  # also score each row's seeds as one ensemble (mt.evaluate)
    long_inputs: list[int] = field(default_factory=list)  # k: test sentences joined k at a time
    segmented: bool = False  # long inputs also split into sentences first (documents.py)
    examples: int = 0  # the sentences where the baseline and each other row differ most
    # Beam sizes at which each run's test outputs are told apart: the reference, a search
    # error or a model error (mt/evaluation/search_errors.py), e.g. [1, 5, 20].
    search_errors: list[int] = field(default_factory=list)
    distilled: list[Distilled] = field(default_factory=list)  # corpora the rows may train on


def load_study(path: Path) -> Study:
    """The study file as a checked Study."""
    try:
        loaded = OmegaConf.load(path)
        study = to_object(OmegaConf.merge(OmegaConf.structured(Study), loaded))
    except FileNotFoundError:
        raise MTError(f"{path}: no such study file") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise MTError(f"{path}: not a YAML study file ({type(e).__name__})") from None
    except (OmegaConfBaseException, YAMLError) as e:
        key = getattr(e, "full_key", None)
        raise MTError(f"{path}: {key + ': ' if key else ''}{first_line(e)}") from None
    except MTError as e:
        raise MTError(f"{path}: {e}") from None
    check_study(study, path)
    return study


def first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def check_study(study: Study, path: Path) -> None:
    """The study as a whole: rows, seeds, distilled corpora, directions, pivots, sizes."""
    check_row_names(study, path)
    for where, seeds in [
        ("seeds", study.seeds),
        *((f"rows: {r.name}: seeds", r.seeds) for r in study.rows if r.seeds is not None),
    ]:
        if not seeds or len(set(seeds)) < len(seeds):
            raise MTError(f"{path}: {where}: {seeds}; give distinct seeds, at least one")
    check_distilled(study, path)
    for row in study.rows:
        for direction in row.directions:
            try:
                parse(direction)
            except MTError as e:
                raise MTError(f"{path}: rows: {row.name}: directions: {e}") from None
    check_pivots(study, path)
    check_sizes(study, path)


def check_sizes(study: Study, path: Path) -> None:
    """Long inputs, search-error beams and examples within their ranges."""
    for key, values, most in [
        ("long_inputs", study.long_inputs, LONG_INPUT_MAX),
        ("search_errors", study.search_errors, SEARCH_BEAM_MAX),
    ]:
        for value in values:
            if not 1 <= value <= most:
                raise MTError(f"{path}: {key}: {value} is outside 1..{most}")
    if not 0 <= study.examples <= 1000:
        raise MTError(f"{path}: examples: {study.examples}; must be in 0..1000")


def check_row_names(study: Study, path: Path) -> None:
    """At least one row, each a distinct directory name; the baseline one of them."""
    names = [row.name for row in study.rows]
    if not names:
        raise MTError(f"{path}: rows: empty; a study needs at least one row")
    for name in names:
        if names.count(name) > 1:
            raise MTError(f"{path}: rows: '{name}' twice; each row needs its own name")
        if not name or "/" in name or name.startswith("."):
            raise MTError(f"{path}: rows: '{name}' is not a directory name")
    if study.baseline is not None and study.baseline not in names:
        raise MTError(f"{path}: baseline: '{study.baseline}' is none of the rows {names}")


def check_distilled(study: Study, path: Path) -> None:
    """Each corpus named once, taught by a row that does not itself train on a distilled
    corpus; {distilled} used only where the study distils."""
    names = [d.name for d in study.distilled]
    for d in study.distilled:
        if names.count(d.name) > 1 or not d.name or "/" in d.name:
            raise MTError(f"{path}: distilled: '{d.name}' is not a distinct directory name")
        teacher = next((r for r in study.rows if r.name == d.teacher), None)
        if teacher is None:
            raise MTError(f"{path}: distilled: {d.name}: teacher '{d.teacher}' is no row")
        if uses_distilled(teacher):
            raise MTError(f"{path}: distilled: {d.name}: its teacher trains on distilled data")
    for row in study.rows:
        if uses_distilled(row) and not names:
            raise MTError(f"{path}: rows: {row.name}: uses {DISTILLED} but nothing is distilled")


def check_pivots(study: Study, path: Path) -> None:
    """A pivot row chains two or more rows that train, and trains nothing itself; the
    per-run evaluations (ensembles, long inputs) are not made for it."""
    trained = {row.name for row in study.rows if not row.pivot}
    for row in study.rows:
        if not row.pivot:
            continue
        where = f"{path}: rows: {row.name}"
        if len(row.pivot) < 2 or not set(row.pivot) <= trained:
            raise MTError(f"{where}: pivot: {row.pivot}; name two or more rows that train")
        if row.overrides or row.directions:
            raise MTError(f"{where}: a pivot row takes no overrides or directions")
        if study.ensemble or study.long_inputs or study.search_errors:
            raise MTError(
                f"{where}: a study with a pivot row makes no ensembles, long inputs or "
                "search-error counts"
            )
        for leg in (r for r in study.rows if r.name in row.pivot):
            if not set(row_seeds(study, row)) <= set(row_seeds(study, leg)):
                raise MTError(f"{where}: pivot: {leg.name} lacks some of its seeds")


# In a row's overrides: {distilled} is <runs>/distilled, the distilled corpora's root, and
# {runs} the runs' directory, for a row that starts from another row's run
# (trainer.init_from={runs}/multilingual-seed1: that row comes first in the file).
DISTILLED, RUNS = "{distilled}", "{runs}"


def uses_distilled(row: StudyRow) -> bool:
    return any(DISTILLED in override for override in row.overrides)


def row_seeds(study: Study, row: StudyRow) -> list[int]:
    return study.seeds if row.seeds is None else row.seeds


def row_overrides(study: Study, row: StudyRow, seed: int, runs: Path) -> list[str]:
    """The mt.train overrides of one run of the study: the study's, then the row's (the later
    of two values of a key wins, so a row's own setting beats the study's), the seed;
    {distilled} and {runs} replaced by the directories they stand for."""
    where = str(runs.resolve())
    overrides = [
        o.replace(DISTILLED, f"{where}/distilled").replace(RUNS, where) for o in row.overrides
    ]
    return [*study.overrides, *overrides, f"trainer.seed={seed}"]


def baseline_row(study: Study) -> StudyRow:
    return next((r for r in study.rows if r.name == study.baseline), study.rows[0])
