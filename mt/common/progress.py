"""Progress bars for long work, at a terminal only: tqdm on stderr when stderr is a terminal,
nothing otherwise (CI, nohup, a pipe), so no bar ever lands in an output or a log file."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from contextlib import contextmanager, nullcontext

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm


def at_terminal() -> bool:
    """Whether stderr, where bars are drawn, is a terminal."""
    return sys.stderr.isatty()


def bar(
    iterable: Iterable | None = None,
    total: int | None = None,
    what: str = "",
    unit: str = "it",
    initial: int = 0,
    show: bool = True,
) -> tqdm:
    """A bar over iterable (or updated by hand up to total, from initial) with rate and time
    left; it draws nothing when stderr is not a terminal, or when show is false."""
    return tqdm(
        iterable,
        total=total,
        desc=what,
        unit=unit,
        initial=initial,
        disable=not (show and at_terminal()),
        leave=False,
        dynamic_ncols=True,
        file=sys.stderr,
    )


@contextmanager
def bar_with_logs(total: int | None, what: str, unit: str, initial: int = 0, show: bool = True):
    """A bar that log lines print above (tqdm's logging redirect), not through."""
    with bar(total=total, what=what, unit=unit, initial=initial, show=show) as shown:
        with nullcontext() if shown.disable else logging_redirect_tqdm():
            yield shown
