"""Writing the user's files safely: under a temporary name, renamed only on success, and
never over one of the command's own inputs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mt.errors import MTError


@contextmanager
def replaced_on_success(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` (same suffixes, so .gz stays .gz), renamed over it
    when the block ends without an error and deleted when it does not: a failed or
    interrupted command leaves the earlier file as it was."""
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    """path's new UTF-8 content, written whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with replaced_on_success(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def refuse_overwriting_inputs(outputs: dict[str, Path], inputs: dict[str, Path]) -> None:
    """One line naming the keys when an output path is also an input (or another output)."""
    named = list(inputs.items())
    for key, path in outputs.items():
        for other, given in named:
            if same_file(path, given):
                raise MTError(f"{key}={path} is also {other}=: refusing to overwrite it")
        named.append((key, path))
