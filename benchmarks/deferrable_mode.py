"""Deferrable mode of the benchmark: many deferred tasks waiting on one worker's triggerer.

Runs ``bench_deferrable`` (benchmarks/dags/bench_deferrable.py): ``--waiting`` mapped tasks defer
to a trigger that waits for one gate file. Once every trigger waits (the worker's
``dagbridge_waiting_triggers`` gauge), the gate opens; each task, resumed in a task process,
returns how long after its trigger fired it ran again. Prints:

- task processes busy while every trigger waits (``dagbridge_busy_task_processes``; 0 expected)
- worker memory per waiting trigger: the worker process's RSS with every trigger waiting, less its
  RSS after a one-task warm-up run, divided by the number of triggers
- trigger-fired-to-task-resumed latency, p50 and p99, with every task resuming at once

    python benchmarks/benchmark.py --mode deferrable [--waiting 1000] [--task-processes 4]
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import tempfile
import urllib.request
import uuid
from pathlib import Path

import psutil
from prometheus_client.parser import text_string_to_metric_families
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter

from benchmarks.benchmark import DAG_QUEUE, percentile, start_dagbridge_worker
from dagbridge.local_stack import TemporalDevServer
from infra.temporal import start_dag_run
from schemas.names import RUN_TRIGGER_ACTIVITY
from schemas.runs import DagRunRequest, DagRunResult, RunOptions

DAG_ID = "bench_deferrable"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gauges(port: int) -> dict[str, float]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return {}
    return {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples}


async def started_triggers(client: Client, workflow_id: str) -> int:
    pending = (await client.get_workflow_handle(workflow_id).describe()).raw_description.pending_activities
    return sum(
        p.activity_type.name == RUN_TRIGGER_ACTIVITY and p.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
        for p in pending
    )


async def start(client: Client, gate: Path, width: int) -> WorkflowHandle:
    request = DagRunRequest(
        dag_id=DAG_ID,
        run_id=f"bench__{uuid.uuid4().hex[:8]}",
        conf={"gate": str(gate), "width": width},
        options=RunOptions(default_task_queue=DAG_QUEUE),
    )
    return await start_dag_run(client, request, DAG_QUEUE)


async def main(width: int, task_processes: int) -> None:
    logs = Path(tempfile.mkdtemp(prefix="dagbridge-bench-deferrable-"))
    port = free_port()
    with TemporalDevServer(logs) as server:
        worker = start_dagbridge_worker(server.address, logs, task_processes, {"DAGBRIDGE_METRICS_PORT": str(port)})
        try:
            client = await Client.connect(server.address, data_converter=pydantic_data_converter)
            warm_gate = logs / "warm-up-gate"
            warm_gate.touch()
            await (await start(client, warm_gate, 1)).result()
            process = psutil.Process(worker.pid)
            idle_rss = process.memory_info().rss

            gate = logs / "gate"
            handle = await start(client, gate, width)
            # The run's current workflow runs every trigger (a workflow that continued as new left
            # its own to the next one), and the worker runs no other (those learnt they are gone).
            while await started_triggers(client, handle.id) < width:
                await asyncio.sleep(1)
            while gauges(port).get("dagbridge_waiting_triggers") != width:
                await asyncio.sleep(0.5)
            waiting = gauges(port)
            waiting_rss = process.memory_info().rss
            gate.touch()
            result: DagRunResult = await handle.result()
        finally:
            worker.terminate()
            worker.wait(timeout=60)
    latencies = [ti.xcom["return_value"] for ti in result.task_instances if ti.task_id == "wait"]
    assert result.state == "success" and len(latencies) == width, result
    print(f"deferred tasks waiting at once:             {width}")
    print(f"task processes busy while they wait:        {waiting['dagbridge_busy_task_processes']:.0f}")
    print(f"worker memory per waiting trigger:          {(waiting_rss - idle_rss) / width / 1024:.1f} KiB")
    print(
        "trigger fired -> task resumed:              "
        f"p50 {statistics.median(latencies) * 1000:.0f} ms, p99 {percentile(latencies, 99) * 1000:.0f} ms "
        f"(all {width} resume at once, {task_processes} task processes)"
    )
    print(f"(server and worker logs in {logs})")
