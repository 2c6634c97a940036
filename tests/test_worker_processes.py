"""`dagbridge worker` with several worker processes: one task queue, one /metrics, kept running, stopped together."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from dagbridge.worker_processes import child_environments, share
from schemas.runs import RunOptions
from schemas.settings import Settings, env_var
from tests.harness import DagRunner, wait_until_running
from tests.processes import WorkerProcess
from tests.servers import LOOPBACK, free_port
from tests.services import scrape, value

QUEUE = "dagbridge-tests-processes"
TIMEOUT_SECONDS = 120


def test_machine_totals_are_shared_out_at_least_one_each() -> None:
    assert share(4, 2) == [2, 2]
    assert share(5, 2) == [3, 2]
    assert share(1, 3) == [1, 1, 1]
    assert sum(share(10_000, 3)) == 10_000


def test_children_read_the_supervisors_settings_with_their_share(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(
        task_processes=5,
        triggers_per_worker=10,
        worker_processes=2,
        schedule_sync_seconds=7,
        metrics_port=9100,
        task_queue="flagged",
        pools={"db": 2},
        temporal_tls=True,
    )
    # task_queue as a flag overrode the environment in the supervisor: the children must follow the flag.
    environ = {"PATH": "/bin", env_var("metrics_port"): "9100", env_var("task_queue"): "from-environment"}

    first, second = child_environments(settings, 2, tmp_path, environ)

    for env in (first, second):
        assert env["PATH"] == "/bin"
        assert env["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path)
    shares = [(3, 5, 7.0), (2, 5, 0.0)]
    for env, (task_processes, triggers, sync_seconds) in zip((first, second), shares, strict=True):
        for name in [name for name in os.environ if name.startswith("DAGBRIDGE_")]:
            monkeypatch.delenv(name)
        for name, setting in env.items():
            if name.startswith("DAGBRIDGE_"):
                monkeypatch.setenv(name, setting)
        assert Settings() == settings.model_copy(
            update={
                "worker_processes": 1,
                "task_processes": task_processes,
                "triggers_per_worker": triggers,
                "schedule_sync_seconds": sync_seconds,
                # The supervisor serves the port; the children record into the folder.
                "metrics_port": None,
            }
        )


def _pid(identity: str) -> int:
    """The process behind a worker identity: the SDK's default identity is ``pid@host``."""
    return int(identity.split("@", 1)[0])


async def _poller_pids(client: Client, queue_type: TaskQueueType.ValueType) -> set[int]:
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace, task_queue=TaskQueue(name=QUEUE), task_queue_type=queue_type
        )
    )
    return {_pid(poller.identity) for poller in response.pollers}


async def _live_poller_pids(client: Client, worker: WorkerProcess, log: Path) -> set[int]:
    """Pids of the supervisor's live children polling QUEUE's workflow tasks (the server remembers dead pollers)."""
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while True:
        pids = {pid for pid in await _poller_pids(client, TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW) if _alive(pid)}
        assert worker.process.poll() is None, log.read_text(errors="replace")[-4000:]
        if len(pids) >= 2 or time.monotonic() > deadline:
            return pids
        await asyncio.sleep(0.3)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_two_processes_share_the_queue_serve_one_metrics_port_and_stop_on_sigterm(
    temporal_client: Client,
    run_dag: DagRunner,
    worker_settings: Settings,
    worker_processes: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    port = free_port()
    settings = worker_settings.model_copy(
        update={
            "task_queue": QUEUE,
            "worker_processes": 2,
            "kafka_bootstrap": "",
            "metrics_host": LOOPBACK,
            "metrics_port": port,
        }
    )
    log = tmp_path / "worker.log"
    worker = WorkerProcess(settings, log)
    worker_processes.append(worker)

    children = await _live_poller_pids(temporal_client, worker, log)
    assert len(children) == 2, f"workflow pollers {children}\n{log.read_text(errors='replace')[-4000:]}"
    assert worker.process.pid not in children
    options = RunOptions(default_task_queue=QUEUE, task_heartbeat_timeout_seconds=5)
    handles = [await run_dag.start("parallel_sleepers", task_queue=QUEUE, options=options) for _ in range(4)]
    results = await asyncio.wait_for(asyncio.gather(*(handle.result() for handle in handles)), TIMEOUT_SECONDS)
    assert [result.state for result in results] == ["success"] * 4
    # Both children serve activities too.
    assert await _poller_pids(temporal_client, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY) >= children

    # One scrape target for the machine: the sum of both children, the SDK's metrics included.
    # The children drain the SDK's metrics into the shared folder every second: wait for the last.
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while True:
        samples = scrape(f"http://{LOOPBACK}:{port}/metrics")
        if value(samples, "temporal_workflow_completed_total", task_queue=QUEUE) >= 4 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.3)
    assert value(samples, "dagbridge_task_tries_total", dag_id="parallel_sleepers", state="success") == 8
    assert value(samples, "dagbridge_task_duration_seconds_count", dag_id="parallel_sleepers") == 8
    assert value(samples, "temporal_workflow_completed_total", task_queue=QUEUE) >= 4
    assert value(samples, "temporal_worker_task_slots_available", task_queue=QUEUE) > 0

    # SIGTERM to the supervisor alone: it stops both children, which stop their task processes.
    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(timeout=60) == 0, log.read_text(errors="replace")[-4000:]
    deadline = time.monotonic() + 30
    while _group_alive(worker.process.pid) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert not _group_alive(worker.process.pid), "processes of the worker outlived it"


async def test_a_killed_child_is_restarted_and_its_runs_complete(
    temporal_client: Client,
    run_dag: DagRunner,
    worker_settings: Settings,
    worker_processes: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    settings = worker_settings.model_copy(update={"task_queue": QUEUE, "worker_processes": 2, "kafka_bootstrap": ""})
    log = tmp_path / "worker.log"
    worker = WorkerProcess(settings, log)
    worker_processes.append(worker)
    children = await _live_poller_pids(temporal_client, worker, log)
    assert len(children) == 2, f"workflow pollers {children}\n{log.read_text(errors='replace')[-4000:]}"

    handle = await run_dag.start(
        "slow_chain", task_queue=QUEUE, options=RunOptions(default_task_queue=QUEUE, task_heartbeat_timeout_seconds=2)
    )
    await wait_until_running(handle, "slow:-1:1")
    description = await handle.describe()
    (running,) = description.raw_description.pending_activities
    victim = _pid(running.last_worker_identity)
    assert victim in children
    os.kill(victim, signal.SIGKILL)

    result = await asyncio.wait_for(handle.result(), timeout=TIMEOUT_SECONDS)
    assert result.state == "success"
    assert {ti.task_id: (ti.state, ti.xcom["return_value"]) for ti in result.task_instances} == {
        "begin": ("success", 7),
        "slow": ("success", 42),
        "finish": ("success", "answer 42"),
    }
    # The supervisor put a new child in the killed one's place.
    restarted = await _live_poller_pids(temporal_client, worker, log)
    assert len(restarted) == 2 and victim not in restarted, log.read_text(errors="replace")[-4000:]
    assert "exited unexpectedly with code -9; restarting it" in log.read_text(errors="replace")
