"""Writing the user's files safely: under a temporary name, renamed only on success, and
never over one of the command's own inputs."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mt.common.errors import MTError

TEMPORARY = ".tmp-"  # temporary names hold their writer: .tmp-PID@HOST~name


def this_process() -> str:
    """PID@HOST: which process holds a lock or writes a temporary file."""
    return f"{os.getpid()}@{socket.gethostname()}"


def process_alive(holder: str) -> bool:
    """Whether the process named "PID@HOST" still runs; one on another host is assumed to."""
    pid, _, host = holder.partition("@")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def temporary_path(path: Path) -> Path:
    """Where path is written before it is renamed into place (same suffixes: .gz stays .gz)."""
    return path.with_name(f"{TEMPORARY}{this_process()}~{path.name}")


def remove_stale_temporaries(directory: Path) -> None:
    """Delete what killed writers left half-written in directory (their process is gone)."""
    for path in directory.glob(f"{TEMPORARY}*~*"):
        if not process_alive(path.name.removeprefix(TEMPORARY).partition("~")[0]):
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)


def os_error(path: Path, error: OSError, what: str) -> MTError:
    """One line for a failed write: the path, the system's reason, and what is kept."""
    reason = error.strerror or str(error)
    try:
        free = f"; {shutil.disk_usage(path.parent).free / 2**20:.1f} MiB free there"
    except OSError:
        free = ""
    return MTError(f"{path}: could not write {what} ({reason}{free}); nothing there was replaced")


@contextmanager
def replaced_on_success(path: Path) -> Iterator[Path]:
    """A temporary path beside `path`, renamed over it when the block ends without an error
    and deleted when it does not: a failed or interrupted command leaves the earlier file as
    it was."""
    tmp = temporary_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    """path's new UTF-8 content, written whole or not at all."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with replaced_on_success(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    except OSError as e:
        raise os_error(path, e, "it") from None


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


def sha256_file(path: Path) -> str:
    """sha256 of a file's bytes, read a megabyte at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def check_markers(path: Path, begin: str, end: str) -> str:
    """path's text, which must hold a block between the begin and end markers."""
    if not path.is_file():
        raise MTError(f"{path}: no such file to write into")
    content = path.read_text(encoding="utf-8")
    if begin not in content or end not in content.split(begin, 1)[1]:
        raise MTError(f"{path}: no '{begin}' ... '{end}' block to replace")
    return content


def replace_block(path: Path, text: str, begin: str, end: str) -> None:
    """Put text between the begin and end markers of path (written whole or not at all)."""
    content = check_markers(path, begin, end)
    head, rest = content.split(begin, 1)
    tail = rest.split(end, 1)[1]
    write_text(path, f"{head}{begin}\n{text}\n{end}{tail}")
