"""Scale mode of the benchmark: how the engine's cost per task changes as a DAG grows.

Runs the same DAG shape at 10, 100, 1,000 and 2,000 tasks (benchmarks/dags/bench_scale.py) and a
task mapped over 10,000 items (or 2,000, ``--mappings 2000``), one run at a time on a
``dagbridge worker``, and reads each run's Temporal history:

- scheduling overhead per task: the time the worker spent in workflow tasks (Airflow's
  scheduling, the private database, building activity inputs), divided by the number of tasks
- the slowest workflow task, against Temporal's default workflow task timeout (10 s)
- history events and size, against Temporal's limits (51,200 events, 50 MiB), summed over the
  run's continue-as-new chain

The smallest DAG is the baseline: a flat per-task overhead means the engine does not slow down
as the DAG grows.

    python benchmarks/benchmark.py --mode scale [--sizes 10,100,1000,2000] [--mappings 2000,10000 | --no-mapping]

``--sizes '' --mappings 10000`` runs the mapping alone.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter

from benchmarks.benchmark import DAG_QUEUE, start_dagbridge_worker
from dagbridge.local_stack import TemporalDevServer
from infra.temporal import start_dag_run
from schemas.runs import DagRunRequest, DagRunResult, RunOptions

HISTORY_EVENT_LIMIT = 51_200
HISTORY_BYTES_LIMIT = 50 * 1024 * 1024
WORKFLOW_TASK_TIMEOUT_SECONDS = 10.0
# The first run of a worker pays for DAG parsing, pool processes and sticky queues: a small one.
WARM_UP_DAG = "bench_scale_10"


@dataclass
class ScaleFigures:
    dag_id: str
    tasks: int
    run_seconds: float
    workflow_task_seconds: float
    slowest_workflow_task_seconds: float
    workflow_tasks: int
    history_events: int
    history_bytes: int
    largest_history_events: int
    runs_in_chain: int

    @property
    def overhead_per_task_ms(self) -> float:
        return self.workflow_task_seconds / self.tasks * 1000


@dataclass
class HistoryFigures:
    workflow_task_seconds: float = 0.0
    slowest_workflow_task_seconds: float = 0.0
    workflow_tasks: int = 0
    events: int = 0
    bytes: int = 0
    largest_events: int = 0
    runs: int = 0

    def add(self, history_events: list, size: int) -> str | None:
        """Count one run of the chain; return the run id it continued as, if any."""
        self.runs += 1
        self.events += len(history_events)
        self.bytes += size
        self.largest_events = max(self.largest_events, len(history_events))
        started: dict[int, datetime] = {}
        continued_as = None
        for event in history_events:
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                started[event.event_id] = event.event_time.ToDatetime()
            elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                began = started[event.workflow_task_completed_event_attributes.started_event_id]
                seconds = (event.event_time.ToDatetime() - began).total_seconds()
                self.workflow_tasks += 1
                self.workflow_task_seconds += seconds
                self.slowest_workflow_task_seconds = max(self.slowest_workflow_task_seconds, seconds)
            elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
                continued_as = event.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
        return continued_as


async def read_history_chain(client: Client, workflow_id: str, first_run_id: str) -> HistoryFigures:
    figures = HistoryFigures()
    run_id: str | None = first_run_id
    while run_id is not None:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        run_id = figures.add(list(history.events), sum(event.ByteSize() for event in history.events))
    return figures


async def run_once(client: Client, dag_id: str) -> ScaleFigures:
    request = DagRunRequest(
        dag_id=dag_id,
        run_id=f"scale__{uuid.uuid4().hex}",
        logical_date=datetime.now(UTC),
        options=RunOptions(default_task_queue=DAG_QUEUE),
    )
    started = time.perf_counter()
    handle: WorkflowHandle = await start_dag_run(client, request, DAG_QUEUE)
    result: DagRunResult = await handle.result()
    elapsed = time.perf_counter() - started
    assert result.state == "success", f"{dag_id}: {result.state} {result.error}"
    history = await read_history_chain(client, handle.id, handle.first_execution_run_id or handle.run_id)
    return ScaleFigures(
        dag_id=dag_id,
        tasks=len(result.task_instances),
        run_seconds=elapsed,
        workflow_task_seconds=history.workflow_task_seconds,
        slowest_workflow_task_seconds=history.slowest_workflow_task_seconds,
        workflow_tasks=history.workflow_tasks,
        history_events=history.events,
        history_bytes=history.bytes,
        largest_history_events=history.largest_events,
        runs_in_chain=history.runs,
    )


HEADER = (
    f"{'DAG':<20}{'tasks':>7}{'run s':>9}{'tasks/s':>9}{'overhead/task ms':>18}{'vs smallest':>13}"
    f"{'slowest WFT ms':>16}{'WFTs':>7}{'events':>9}{'MiB':>7}{'runs':>6}"
)


def row(f: ScaleFigures, baseline: ScaleFigures) -> str:
    return (
        f"{f.dag_id:<20}{f.tasks:>7}{f.run_seconds:>9.1f}{f.tasks / f.run_seconds:>9.1f}"
        f"{f.overhead_per_task_ms:>18.2f}{f.overhead_per_task_ms / baseline.overhead_per_task_ms:>12.2f}x"
        f"{f.slowest_workflow_task_seconds * 1000:>16.0f}{f.workflow_tasks:>7}{f.history_events:>9}"
        f"{f.history_bytes / 2**20:>7.1f}{f.runs_in_chain:>6}"
    )


def summary(figures: list[ScaleFigures]) -> str:
    largest = max(figures, key=lambda f: f.tasks)
    return "\n".join(
        [
            f"largest run ({largest.dag_id}): "
            f"slowest workflow task {largest.slowest_workflow_task_seconds * 1000:.0f} ms "
            f"(timeout {WORKFLOW_TASK_TIMEOUT_SECONDS:.0f} s); history {largest.history_events} events in "
            f"{largest.runs_in_chain} run(s), at most {largest.largest_history_events} in one "
            f"(limit {HISTORY_EVENT_LIMIT}), {largest.history_bytes / 2**20:.1f} MiB in all "
            f"(limit {HISTORY_BYTES_LIMIT // 2**20} MiB per run)",
            f"({os.cpu_count()} CPUs; overhead = time in workflow tasks / tasks)",
        ]
    )


async def measure(address: str, dag_ids: list[str]) -> list[ScaleFigures]:
    """Run each DAG once, printing its row as soon as it is known (large runs take minutes)."""
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    await run_once(client, WARM_UP_DAG)  # DAG parsing, pool processes, sticky queues
    print(HEADER, flush=True)
    figures: list[ScaleFigures] = []
    for dag_id in dag_ids:
        figures.append(await run_once(client, dag_id))
        print(row(figures[-1], figures[0]), flush=True)
    return figures


def main(sizes: list[int], mapping_widths: list[int], task_processes: int) -> None:
    dag_ids = [f"bench_scale_{size}" for size in sizes] + [f"bench_map_{width}" for width in mapping_widths]
    logs = Path(tempfile.mkdtemp(prefix="dagbridge-scale-"))
    with TemporalDevServer(logs) as server:
        worker = start_dagbridge_worker(server.address, logs, task_processes)
        try:
            figures = asyncio.run(measure(server.address, dag_ids))
            print(summary(figures))
            print(f"(server and worker logs in {logs})")
        finally:
            worker.terminate()
            worker.wait(timeout=60)
