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
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from dagbridge.local_stack import TemporalDevServer
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
        catchup=False,
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


async def tick_to_first_task(client: Client, expected_runs: int, deadline: float) -> list[float]:
    """Seconds from each run's ``run_after`` to its first task try's start, once every run ended."""
    query = f"WorkflowType = '{DAG_RUN_WORKFLOW}' AND ExecutionStatus != 'Running'"
    while (await client.count_workflows(query)).count < expected_runs:
        if time.monotonic() > deadline:
            raise SystemExit(f"not every run ended in time: {(await client.count_workflows(query)).count}")
        await asyncio.sleep(2)
    delays = []
    async for execution in client.list_workflows(f"WorkflowType = '{DAG_RUN_WORKFLOW}'"):
        history = await client.get_workflow_handle(execution.id, run_id=execution.run_id).fetch_history()
        started = history.events[0].workflow_execution_started_event_attributes.input.payloads
        [request] = await client.data_converter.decode(started, [DagRunRequest])
        scheduled_tries = {
            event.event_id
            for event in history.events
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
            and event.activity_task_scheduled_event_attributes.activity_type.name == RUN_TASK_TRY_ACTIVITY
        }
        first_try = min(
            event.event_time.ToDatetime(tzinfo=UTC)
            for event in history.events
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
            and event.activity_task_started_event_attributes.scheduled_event_id in scheduled_tries
        )
        assert request.run_after is not None
        delays.append((first_try - request.run_after).total_seconds())
    return delays


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

            async def measure() -> list[float]:
                client = await Client.connect(server.address, data_converter=pydantic_data_converter)
                last_tick = first_tick + timedelta(seconds=args.period * (args.ticks - 1))
                deadline = time.monotonic() + (last_tick - datetime.now(UTC)).total_seconds() + 600
                return await tick_to_first_task(client, args.dags * args.ticks, deadline)

            delays = asyncio.run(measure())
        finally:
            worker.terminate()
            worker.wait(timeout=60)
    print(
        f"{args.dags} DAGs every {args.period} s, {args.ticks} ticks, one worker ({args.task_processes} task "
        f"processes): {len(delays)} runs; tick -> first task try started: p50 {percentile(delays, 0.5) * 1000:.0f} ms, "
        f"p99 {percentile(delays, 0.99) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms"
    )
    print(f"(server and worker logs in {logs})")
