"""Ctrl-C and `kill` (SIGINT, SIGTERM) ask a training to stop after its current step, so it
can save where it is; a second Ctrl-C stops it at once."""

from __future__ import annotations

import logging
import signal

log = logging.getLogger("mt")

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequests:
    """While active, remembers the first stop signal instead of dying of it."""

    def __init__(self) -> None:
        self.received: signal.Signals | None = None
        self.previous: dict = {}

    def __enter__(self) -> StopRequests:
        for sig in SIGNALS:
            self.previous[sig] = signal.signal(sig, self.handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def handle(self, signum: int, frame) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the user insists: stop now, without saving
        self.received = signal.Signals(signum)
        log.warning(
            "%s received: stopping after this step and saving last.pt (Ctrl-C again stops "
            "at once, without saving)",
            self.received.name,
        )
