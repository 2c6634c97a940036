"""The benchmark's gate trigger: many deferred tasks wait for one file, then resume and time it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator
from airflow.triggers.base import BaseTrigger, TriggerEvent


class TimedGateTrigger(BaseTrigger):
    """Waits for the gate file, then yields the wall-clock time it fired at."""

    def __init__(self, gate: str, interval: float = 0.5) -> None:
        super().__init__()
        self.gate, self.interval = gate, interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return "bench_triggers.TimedGateTrigger", {"gate": self.gate, "interval": self.interval}

    async def run(self):
        while not Path(self.gate).exists():
            await asyncio.sleep(self.interval)
        yield TriggerEvent(time.time())


class TimedGateOperator(BaseOperator):
    """Defers on the gate; resumed, returns how long after its trigger fired it runs again (seconds)."""

    template_fields = ("gate",)

    def __init__(self, *, gate: str, index: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate, self.index = gate, index

    def execute(self, context: Any) -> None:
        self.defer(trigger=TimedGateTrigger(self.gate), method_name="resumed")

    def resumed(self, context: Any, event: float) -> float:
        return time.time() - event
