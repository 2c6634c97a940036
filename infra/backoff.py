"""Delays between retries of a call to a server that is down."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

log = logging.getLogger(__name__)

_T = TypeVar("_T")


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff, each delay drawn between half and all of the current ceiling.

    Jitter spreads the retries of many waiting callers (every in-flight start of the
    bridge, every worker's publishes) so a server coming back is not hit all at once.
    """

    initial_seconds: float = 0.5
    maximum_seconds: float = 10.0

    def delays(self) -> Iterator[float]:
        ceiling = self.initial_seconds
        while True:
            yield random.uniform(ceiling / 2, ceiling)
            ceiling = min(ceiling * 2, self.maximum_seconds)


# Frozen, so one instance serves as every default.
DEFAULT_BACKOFF = Backoff()


async def until_stopped(
    stop: asyncio.Event,
    attempt: Callable[[], Awaitable[_T]],
    retry_on: Callable[[Exception], bool],
    *,
    backoff: Backoff = DEFAULT_BACKOFF,
) -> _T | None:
    """``attempt()``'s result, attempted again after each error ``retry_on`` accepts; None once ``stop`` is set.

    Each failed attempt logs one warning with the error (which names the server and its address)
    and the delay before the next. An attempt still running when ``stop`` is set is cancelled, so
    a process waiting for its server stops promptly. Raises the errors ``retry_on`` refuses.
    """
    delays = backoff.delays()
    while not stop.is_set():
        trying = asyncio.ensure_future(attempt())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({trying, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not trying.done():
                trying.cancel()
                await asyncio.gather(trying, return_exceptions=True)
        if trying.cancelled():
            return None
        error = trying.exception()
        if error is None:
            return trying.result()
        if not isinstance(error, Exception) or not retry_on(error):
            raise error
        delay = next(delays)
        log.warning("%s; retrying in %.1f s", error, delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
    return None
