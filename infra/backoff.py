"""Delays between retries of a call to a server that is down."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass


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
