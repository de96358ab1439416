"""The one exception type for problems the user can fix (bad files, bad settings), and how
every command line reports it."""

import sys
from collections.abc import Iterator
from contextlib import contextmanager


class MTError(Exception):
    """A user-facing error: its message names the file, line or key at fault."""


@contextmanager
def reported() -> Iterator[None]:
    """An MTError inside ends the command: `error: MESSAGE` on stderr, exit status 1."""
    try:
        yield
    except MTError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
