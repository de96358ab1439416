"""The one exception type for problems the user can fix (bad files, bad settings), and how
every command line reports it and ends."""

import atexit
import functools
import gc
import importlib.metadata
import sys
from collections.abc import Iterator
from contextlib import contextmanager

DISTRIBUTION = "mt-toolkit"  # the name pip knows mt by (pyproject.toml)


class MTError(Exception):
    """A user-facing error: its message names the file, line or key at fault."""

    label = "error"
    exit_status = 1


class Stopped(MTError):
    """The user stopped the command with a signal; it ends with 128 + the signal's number."""

    label = "stopped"

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_status = 128 + signum


class MissingCorpus(MTError):
    """A corpus file that is not where the settings say: the command names its own way to
    say where it lies now (data.root, data_root=, --data-root; corpus_at)."""

    def __init__(self, message: str, corpus: str):
        super().__init__(message)
        self.corpus = corpus  # the corpus's directory name, e.g. multi30k


@contextmanager
def corpus_at(knob: str) -> Iterator[None]:
    """A corpus not found names the command's own setting for where it lies (knob)."""
    try:
        yield
    except MissingCorpus as e:
        raise MTError(f"{e}; or point {knob} at the directory that holds {e.corpus}/") from None


@functools.cache  # once per process
def exit_without_last_collection() -> None:
    """At exit, freeze the heap so that the interpreter's last garbage collection passes over
    it: with torch and its compiler loaded (an optimizer imports it), that pass took a second
    of each command's exit (docs/performance.md). Nothing a command leaves needs collecting:
    its files, checkpoints and TensorBoard events are closed by then."""
    atexit.register(gc.freeze)


@contextmanager
def reported() -> Iterator[None]:
    """An MTError inside ends the command: `error: MESSAGE` on stderr and a non-zero exit."""
    exit_without_last_collection()
    try:
        yield
    except MTError as e:
        print(f"{e.label}: {e}", file=sys.stderr)
        sys.exit(e.exit_status)
    except OSError as e:  # the system refused (a full disk, a permission): its reason, one line
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        sys.exit(1)


def missing_extra(what: str, extra: str, missing: str) -> MTError:
    """One line saying that what needs an optional extra, with the packages it adds as this
    installation's own metadata lists them (mt-toolkit is not on PyPI: pip install
    "mt-toolkit[...]" would find nothing)."""
    try:
        requires = importlib.metadata.requires(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        requires = []
    marker = f'extra == "{extra}"'
    packages = [r.partition(";")[0].strip() for r in requires if marker in r]
    how = " ".join(f'"{p}"' for p in packages) or f'-e ".[{extra}]" (from a clone)'
    return MTError(f"{what} needs the {extra} extra ({missing} is missing): pip install {how}")
