"""A worker killed with SIGKILL in the middle of a task loses nothing: another worker finishes the run."""

from __future__ import annotations

import asyncio
from pathlib import Path

from schemas.runs import RunOptions
from schemas.settings import Settings
from tests.harness import DagRunner, wait_until_running
from tests.processes import WorkerProcess

QUEUE = "dagbridge-tests-durability"


async def test_run_survives_worker_killed_mid_task(
    run_dag: DagRunner, worker_settings: Settings, worker_processes: list[WorkerProcess], tmp_path: Path
) -> None:
    settings = worker_settings.model_copy(update={"task_queue": QUEUE, "task_processes": 1})
    worker_processes.append(WorkerProcess(settings, tmp_path / "first-worker.log"))
    handle = await run_dag.start(
        "slow_chain",
        task_queue=QUEUE,
        options=RunOptions(default_task_queue=QUEUE, task_heartbeat_timeout_seconds=2),
    )
    await wait_until_running(handle, "slow:-1:1")

    worker_processes[0].kill()
    worker_processes.append(WorkerProcess(settings, tmp_path / "second-worker.log"))
    result = await asyncio.wait_for(handle.result(), timeout=120)

    assert result.state == "success"
    assert {ti.task_id: (ti.state, ti.try_number, ti.xcom["return_value"]) for ti in result.task_instances} == {
        "begin": ("success", 1, 7),
        "slow": ("success", 1, 42),
        "finish": ("success", 1, "answer 42"),
    }
    description = await handle.describe()
    assert description.raw_description.pending_activities == []
