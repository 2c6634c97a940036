"""SIGTERM on a worker: it stops taking work and lets a running try end within its grace period;
past the grace period it stops the try, and Temporal hands it to another worker as the same try."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

from schemas.runs import RunOptions
from schemas.settings import Settings
from tests.harness import DagRunner, wait_until_running
from tests.history import activity_attempts
from tests.processes import WorkerProcess

TRY = "wait_for_release:-1:1"
PATIENCE_SECONDS = 120


async def _run_until_its_try_started(
    run_dag: DagRunner, settings: Settings, tmp_path: Path
) -> tuple[WorkerProcess, Any, Path]:
    first = WorkerProcess(settings, tmp_path / "first-worker.log")
    release = tmp_path / "release"
    handle = await run_dag.start(
        "released_task",
        task_queue=settings.task_queue,
        options=RunOptions(default_task_queue=settings.task_queue),
        conf={"marker_dir": str(tmp_path), "release_file": str(release)},
    )
    await wait_until_running(handle, TRY, timeout=PATIENCE_SECONDS)
    async with asyncio.timeout(PATIENCE_SECONDS):
        while not (tmp_path / "started").exists():
            await asyncio.sleep(0.2)
    return first, handle, release


async def test_sigterm_lets_a_running_try_end_within_the_grace_period(
    run_dag: DagRunner, worker_settings: Settings, tmp_path: Path
) -> None:
    settings = worker_settings.model_copy(
        update={"task_queue": "dagbridge-tests-grace-ends", "task_processes": 1, "shutdown_grace_seconds": 300}
    )
    first, handle, release = await _run_until_its_try_started(run_dag, settings, tmp_path)
    os.killpg(first.process.pid, signal.SIGTERM)
    # The first worker polls no more: the rest of the run needs another one.
    second = WorkerProcess(settings, tmp_path / "second-worker.log")
    try:
        # Released only after SIGTERM: the try can only have ended during the grace period.
        release.touch()
        result = await asyncio.wait_for(handle.result(), PATIENCE_SECONDS)
        assert await asyncio.to_thread(first.process.wait, PATIENCE_SECONDS) == 0
    finally:
        first.terminate()
        second.terminate()

    assert [(ti.task_id, ti.state, ti.try_number, ti.xcom) for ti in result.task_instances] == [
        ("wait_for_release", "success", 1, {"return_value": "released"})
    ]
    # One activity attempt: the try ran to its end on the worker that was told to stop.
    assert (await activity_attempts(handle))[TRY] == 1


async def test_past_the_grace_period_the_try_is_stopped_and_handed_to_another_worker(
    run_dag: DagRunner, worker_settings: Settings, tmp_path: Path
) -> None:
    settings = worker_settings.model_copy(
        update={
            "task_queue": "dagbridge-tests-grace-over",
            "task_processes": 1,
            "shutdown_grace_seconds": 1,
            "task_heartbeat_timeout_seconds": 5,
        }
    )
    first, handle, release = await _run_until_its_try_started(run_dag, settings, tmp_path)
    os.killpg(first.process.pid, signal.SIGTERM)
    second = WorkerProcess(settings, tmp_path / "second-worker.log")
    try:
        # The first worker exits once its grace period is over, with the try still waiting.
        assert await asyncio.to_thread(first.process.wait, PATIENCE_SECONDS) == 0
        release.touch()
        result = await asyncio.wait_for(handle.result(), PATIENCE_SECONDS)
    finally:
        first.terminate()
        second.terminate()

    # The same Airflow try, run again from the start by the second worker.
    assert [(ti.task_id, ti.state, ti.try_number, ti.xcom) for ti in result.task_instances] == [
        ("wait_for_release", "success", 1, {"return_value": "released"})
    ]
    assert (await activity_attempts(handle))[TRY] == 2
