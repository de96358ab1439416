"""The one exception type for problems the user can fix (bad files, bad settings), and how
every command line reports it."""

import sys
from collections.abc import Iterator
from contextlib import contextmanager


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


@contextmanager
def reported() -> Iterator[None]:
    """An MTError inside ends the command: `error: MESSAGE` on stderr and a non-zero exit."""
    try:
        yield
    except MTError as e:
        print(f"{e.label}: {e}", file=sys.stderr)
        sys.exit(e.exit_status)
    except OSError as e:  # the system refused (a full disk, a permission): its reason, one line
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        sys.exit(1)
