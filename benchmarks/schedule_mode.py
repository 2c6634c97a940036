"""Schedule mode of the benchmark: many DAGs ticking at once on one worker.

Writes ``--dags`` DAGs (one Python task each) on the same ``--period``-second schedule into a
fresh dags folder, starts a Temporal dev server and one ``dagbridge worker`` on it, lets every DAG
tick ``--ticks`` times (all DAGs tick in the same second: the worst case of cron schedules), and
reads every run's history for the delay from its tick (``run_after``) to the start of its first
task try.

    python benchmarks/benchmark.py --mode schedule [--dags 200] [--period 60] [--ticks 3]
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import History
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from dagbridge.local_stack import TemporalDevServer
from schemas.ids import schedule_workflow_id
from schemas.names import DAG_RUN_WORKFLOW, RUN_TASK_TRY_ACTIVITY
from schemas.runs import DagRunRequest

ROOT = Path(__file__).resolve().parents[1]
QUEUE = "bench-schedules"
# The worker starts, parses the file and starts every schedule before the first tick.
LEAD = timedelta(seconds=90)

DAG_FILE = """\
import datetime

from airflow.sdk import DAG, task

FIRST_TICK = {first_tick!r}

for index in range({dags}):
    with DAG(
        f"bench_sched_{{index:03d}}",
        schedule=datetime.timedelta(seconds={period}),
        start_date=FIRST_TICK,
        end_date=FIRST_TICK + datetime.timedelta(seconds={period} * ({ticks} - 1)),
        # On: every run's run_after is its tick (start_date is ahead of the worker's start, so
        # there is nothing to catch up). Off, the timetable would place a run at "now", the moment
        # the schedule asked, which hides the schedule's own delay and moves the later ticks.
        catchup=True,
    ) as dag:

        @task
        def tick():
            return 1

        tick()
    globals()[dag.dag_id] = dag
"""


@dataclass(frozen=True)
class ScheduleArgs:
    dags: int
    period: int
    ticks: int
    task_processes: int


async def tick_to_first_task(client: Client, expected_runs: int, deadline: float) -> list[dict[str, float]]:
    """For each run, once every run ended: seconds from its ``run_after`` to each step on the way to its first try.

    The last step, ``first try started``, is the figure the benchmark reports; the others say where
    the time went (see :func:`run_steps`).
    """
    query = f"WorkflowType = '{DAG_RUN_WORKFLOW}' AND ExecutionStatus != 'Running'"
    while (await client.count_workflows(query)).count < expected_runs:
        if time.monotonic() > deadline:
            raise SystemExit(f"not every run ended in time: {(await client.count_workflows(query)).count}")
        await asyncio.sleep(2)
    runs = []
    async for execution in client.list_workflows(f"WorkflowType = '{DAG_RUN_WORKFLOW}'"):
        history = await client.get_workflow_handle(execution.id, run_id=execution.run_id).fetch_history()
        started = history.events[0].workflow_execution_started_event_attributes.input.payloads
        [request] = await client.data_converter.decode(started, [DagRunRequest])
        assert request.run_after is not None
        schedule = await client.get_workflow_handle(schedule_workflow_id(request.dag_id)).fetch_history()
        steps = schedule_steps(schedule, execution.id) | run_steps(history)
        runs.append({step: (at - request.run_after).total_seconds() for step, at in steps.items()})
    return runs


def _at(event: object) -> datetime:
    return event.event_time.ToDatetime(tzinfo=UTC)  # type: ignore[attr-defined]


def _local_activity(event: object) -> str:
    """The activity type a local activity's marker names (in the JSON of one of its details)."""
    for payloads in event.marker_recorded_event_attributes.details.values():  # type: ignore[attr-defined]
        for payload in payloads.payloads:
            try:
                data = json.loads(payload.data)
            except ValueError:
                continue
            if isinstance(data, dict) and "activity_type" in data:
                return str(data["activity_type"])
    return "?"


def schedule_steps(history: History, run_workflow_id: str) -> dict[str, datetime]:
    """When the schedule's timer for the run fired, and when it asked the timetable and started the run."""
    fired: datetime | None = None
    asked: datetime | None = None
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_TIMER_FIRED:
            fired, asked = _at(event), None
        elif event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            asked = _at(event)
        elif (
            event.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
            and event.start_child_workflow_execution_initiated_event_attributes.workflow_id == run_workflow_id
        ):
            found = {"schedule timer fired": fired, "schedule asked the timetable": asked}
            return {step: at for step, at in found.items() if at is not None} | {"run start decided": _at(event)}
    return {}


def run_steps(history: History) -> dict[str, datetime]:
    """The first time each step of the run happened: its start, its first workflow task, each local
    activity (numbered when repeated: the run slot claim, then the task's pool claim), the first
    signal (a slot grant), the first try scheduled and started."""
    steps: dict[str, datetime] = {"run workflow started": _at(history.events[0])}
    seen: dict[str, int] = {}
    tries = set()
    for event in history.events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            steps.setdefault("run first workflow task", _at(event))
        elif kind == EventType.EVENT_TYPE_MARKER_RECORDED:
            name = _local_activity(event)
            seen[name] = seen.get(name, 0) + 1
            steps.setdefault(f"local activity {name} #{seen[name]}", _at(event))
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            steps.setdefault("first signal", _at(event))
        elif (
            kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
            and event.activity_task_scheduled_event_attributes.activity_type.name == RUN_TASK_TRY_ACTIVITY
        ):
            tries.add(event.event_id)
            steps.setdefault("first try scheduled", _at(event))
        elif (
            kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
            and event.activity_task_started_event_attributes.scheduled_event_id in tries
        ):
            steps.setdefault("first try started", _at(event))
    return steps


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def main(args: ScheduleArgs) -> None:
    logs = Path(tempfile.mkdtemp(prefix="dagbridge-schedules-"))
    dags = logs / "dags"
    dags.mkdir()
    first_tick = (datetime.now(UTC) + LEAD).replace(microsecond=0)
    (dags / "bench_schedules.py").write_text(
        DAG_FILE.format(first_tick=first_tick, dags=args.dags, period=args.period, ticks=args.ticks)
    )
    with TemporalDevServer(logs) as server:
        worker = subprocess.Popen(
            [sys.executable, "-m", "dagbridge.cli", "worker"],
            env={
                **os.environ,
                "AIRFLOW_HOME": str(logs / "airflow-home"),
                "DAGBRIDGE_TEMPORAL_ADDRESS": server.address,
                "DAGBRIDGE_TASK_QUEUE": QUEUE,
                "DAGBRIDGE_DAGS_FOLDER": str(dags),
                "DAGBRIDGE_TASK_PROCESSES": str(args.task_processes),
                "DAGBRIDGE_KAFKA_BOOTSTRAP": "",
            },
            stdout=(logs / "dagbridge-worker.log").open("wb"),
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        try:

            async def measure() -> list[dict[str, float]]:
                client = await Client.connect(server.address, data_converter=pydantic_data_converter)
                last_tick = first_tick + timedelta(seconds=args.period * (args.ticks - 1))
                deadline = time.monotonic() + (last_tick - datetime.now(UTC)).total_seconds() + 600
                return await tick_to_first_task(client, args.dags * args.ticks, deadline)

            runs = asyncio.run(measure())
        finally:
            worker.terminate()
            worker.wait(timeout=60)
    delays = [run["first try started"] for run in runs]
    steps = sorted({step for run in runs for step in run}, key=lambda step: percentile(_values(runs, step), 0.5))
    print(
        f"{args.dags} DAGs every {args.period} s, {args.ticks} ticks, one worker ({args.task_processes} task "
        f"processes): {len(delays)} runs; tick -> first task try started: p50 {percentile(delays, 0.5) * 1000:.0f} ms, "
        f"p99 {percentile(delays, 0.99) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms"
    )
    print("where the time went, seconds after the tick (p50 / p90 over the runs that had the step):")
    for step in steps:
        values = _values(runs, step)
        print(f"  {step:45s} {percentile(values, 0.5):8.2f} {percentile(values, 0.9):8.2f}  ({len(values)} runs)")
    print(f"(server and worker logs in {logs})")


def _values(runs: list[dict[str, float]], step: str) -> list[float]:
    return [run[step] for run in runs if step in run]
