"""Triggers and deferring operators of the deferrable conformance DAGs.

Importable as ``conformance.deferrable_triggers`` from the test dags folder (as Airflow puts the
dags folder on the path): a trigger's classpath must import where the triggerer runs it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from pathlib import Path
from typing import Any

from airflow.providers.standard.sensors.time_delta import TimeDeltaSensor
from airflow.sdk import BaseOperator
from airflow.triggers.base import BaseTrigger, StartTriggerArgs, TriggerEvent

CLASSPATH = "conformance.deferrable_triggers.PollingTrigger"


class PollingTrigger(BaseTrigger):
    """Yields after ``polls`` polls an event carrying ``payload``, or raises when told to fail."""

    def __init__(self, polls: int, payload: Any, fail: bool = False, interval: float = 0.2, marker: str = "") -> None:
        super().__init__()
        self.polls, self.payload, self.fail, self.interval, self.marker = polls, payload, fail, interval, marker

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return CLASSPATH, {
            "polls": self.polls, "payload": self.payload, "fail": self.fail, "interval": self.interval,
            "marker": self.marker,
        }  # fmt: skip

    async def run(self):
        for _ in range(self.polls):
            await asyncio.sleep(self.interval)
        if self.fail:
            raise RuntimeError(f"the trigger gave up after {self.polls} polls")
        yield TriggerEvent({"payload": self.payload, "polls": self.polls})

    async def cleanup(self) -> None:
        # Tests that pass a marker directory see that cleanup() ran, once per run of the trigger.
        if self.marker:
            Path(self.marker).mkdir(parents=True, exist_ok=True)
            (Path(self.marker) / f"cleanup-{asyncio.get_running_loop().time()}").touch()


class PollingOperator(BaseOperator):
    """Defers to a PollingTrigger and returns the event it resumes with."""

    template_fields = ("marker",)

    def __init__(self, *, polls: int, payload: Any = None, fail: bool = False, timeout_seconds: float | None = None,
                 interval: float = 0.2, marker: str = "", **kwargs: Any) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.polls, self.payload, self.fail, self.interval, self.marker = polls, payload, fail, interval, marker
        self.timeout_seconds = timeout_seconds

    def execute(self, context: Any) -> None:
        self.defer(
            trigger=PollingTrigger(self.polls, self.payload, self.fail, self.interval, self.marker),
            method_name="execute_complete",
            timeout=datetime.timedelta(seconds=self.timeout_seconds) if self.timeout_seconds else None,
        )

    def execute_complete(self, context: Any, event: Any) -> Any:
        return event


class TwiceDeferringOperator(BaseOperator):
    """Defers, resumes, defers again, and returns both events."""

    def execute(self, context: Any) -> None:
        self.defer(trigger=PollingTrigger(2, "first"), method_name="second")

    def second(self, context: Any, event: Any) -> None:
        context["ti"].xcom_push(key="first_event", value=event)
        self.defer(trigger=PollingTrigger(1, "second"), method_name="done")

    def done(self, context: Any, event: Any) -> Any:
        first = context["ti"].xcom_pull(task_ids=self.task_id, key="first_event")
        return {"first": first, "second": event, "try_number": context["ti"].try_number}


class StartsFromTriggerOperator(BaseOperator):
    """Starts in the triggerer (Airflow's scheduler defers it without running execute), then resumes.

    dag.test() ignores start_from_trigger and runs execute, which defers to the same trigger.
    """

    start_trigger_args = StartTriggerArgs(
        trigger_cls=CLASSPATH,
        trigger_kwargs={"polls": 2, "payload": "from the trigger", "fail": False, "interval": 0.2, "marker": ""},
        next_method="execute_complete",
        next_kwargs=None,
        timeout=None,
    )
    start_from_trigger = True

    def execute(self, context: Any) -> None:
        self.defer(trigger=PollingTrigger(2, "from the trigger"), method_name="execute_complete")

    def execute_complete(self, context: Any, event: Any) -> Any:
        return {"event": event, "try_number": context["ti"].try_number}


class TemplatedFromTriggerOperator(BaseOperator):
    """Starts in the triggerer with a templated trigger kwarg (``payload``, also a template field), which
    Airflow's triggerer renders against the task's context; returns the event, rendered payload included.

    dag.test() runs execute instead, which renders ``payload`` as any template field and defers with it.
    """

    template_fields = ("payload",)
    start_trigger_args = StartTriggerArgs(
        trigger_cls=CLASSPATH, trigger_kwargs={}, next_method="execute_complete", next_kwargs=None, timeout=None
    )
    start_from_trigger = True

    def __init__(self, *, payload: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.payload = payload
        self.start_trigger_args = dataclasses.replace(
            self.start_trigger_args,
            trigger_kwargs={"polls": 1, "payload": payload, "fail": False, "interval": 0.2, "marker": ""},
        )

    def execute(self, context: Any) -> None:
        self.defer(trigger=PollingTrigger(1, self.payload), method_name="execute_complete")

    def execute_complete(self, context: Any, event: Any) -> Any:
        return event


class FromNowSensor(TimeDeltaSensor):
    """A TimeDeltaSensor counting from now: the tests' logical date is long past."""

    def _derive_base_time(self, context: Any) -> datetime.datetime:
        return datetime.datetime.now(tz=datetime.UTC)


class GateTrigger(BaseTrigger):
    """Polls until the gate file exists, then yields ``index``: a test holds many triggers waiting."""

    def __init__(self, gate: str, index: int, interval: float = 0.5) -> None:
        super().__init__()
        self.gate, self.index, self.interval = gate, index, interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return "conformance.deferrable_triggers.GateTrigger", {
            "gate": self.gate, "index": self.index, "interval": self.interval,
        }  # fmt: skip

    async def run(self):
        while not Path(self.gate).exists():
            await asyncio.sleep(self.interval)
        yield TriggerEvent(self.index)

    async def on_kill(self) -> None:
        # What Airflow's triggerer calls when a user action cancels the trigger.
        killed = Path(f"{self.gate}.killed")
        killed.mkdir(parents=True, exist_ok=True)
        (killed / str(self.index)).touch()


class GateOperator(BaseOperator):
    """Defers until the gate opens; on resume, leaves one file per resumption next to the gate."""

    template_fields = ("gate",)

    def __init__(self, *, gate: str, index: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate, self.index = gate, index

    def execute(self, context: Any) -> None:
        self.defer(trigger=GateTrigger(self.gate, self.index), method_name="resumed")

    def resumed(self, context: Any, event: Any) -> int:
        import uuid

        resumptions = Path(f"{self.gate}.resumed")
        resumptions.mkdir(parents=True, exist_ok=True)
        (resumptions / f"{self.index}-{uuid.uuid4().hex}").touch()
        return event
