"""Bounds on slow clients, below the application: uvicorn's HTTP protocol with a read
deadline. uvicorn itself waits forever for a request's headers and body (its keep-alive
timeout covers only idle connections between requests), so 3000 clients that each send the
headers and one byte of the body would hold 3000 connections for good.

The deadline starts when a connection opens, and again when each answer is complete: the
whole next request must have arrived by then, or the connection is closed. A deadline belongs
to one request: arming the next cancels it. A request that has
arrived is never cut short by it, however long its translation takes. The number of open
connections is bounded by uvicorn's own limit_concurrency (mt.serve's max_connections).
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.auto import AutoHTTPProtocol


def bounded_protocol(read_timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (h11 or httptools, whichever it picks) with a read deadline."""

    class ReadDeadline(AutoHTTPProtocol):
        deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self.arm_read_deadline()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self.arm_read_deadline()

        def connection_lost(self, exc) -> None:
            if self.deadline is not None:
                self.deadline.cancel()
            super().connection_lost(exc)

        def arm_read_deadline(self) -> None:
            # uvicorn keeps the request it is reading or answering as self.cycle, replaced
            # when the next request's headers are complete; more_body is False once its
            # body has all arrived. An earlier request's deadline would cut this one short.
            if self.deadline is not None:
                self.deadline.cancel()
            answered = self.cycle
            self.deadline = self.loop.call_later(read_timeout_s, self.close_if_waiting, answered)

        def close_if_waiting(self, answered) -> None:
            waiting = self.cycle is answered or self.cycle.more_body
            if waiting and not self.transport.is_closing():
                self.transport.close()

    return ReadDeadline
