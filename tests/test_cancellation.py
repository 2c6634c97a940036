"""Stopping a run from outside (Temporal's cancel, ``dagbridge cancel``) and by its dagrun_timeout."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import CancelledError

from schemas.settings import Settings
from tests.harness import DagRunner
from tests.history import activity_endings, published_run_event
from tests.processes import settings_environment

# Far below the 300 s the long task sleeps: a run that ends within it had its task stopped.
RUN_END_TIMEOUT = 60


async def start_long_task(run_dag: DagRunner, dag_id: str, marker_dir: Path) -> WorkflowHandle:
    handle = await run_dag.start(dag_id, conf={"marker_dir": str(marker_dir)})
    async with asyncio.timeout(RUN_END_TIMEOUT):
        while not (marker_dir / "started").exists():
            await asyncio.sleep(0.1)
    return handle


def cancel_command(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dagbridge.cli", "cancel", *args],
        env={**os.environ, **settings_environment(settings)},
        capture_output=True,
        text=True,
        timeout=RUN_END_TIMEOUT,
        check=False,
    )


async def test_cancel_ends_a_run_mid_task(run_dag: DagRunner, tmp_path: Path) -> None:
    handle = await start_long_task(run_dag, "long_task", tmp_path)

    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as failure:
        await asyncio.wait_for(handle.result(), RUN_END_TIMEOUT)

    assert isinstance(failure.value.cause, CancelledError)
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    # Airflow's on_kill ran in the process that ran the task, and that process is still there.
    task_pid = int((tmp_path / "started").read_text())
    assert int((tmp_path / "killed").read_text()) == task_pid
    os.kill(task_pid, 0)
    # The try reported its cancellation before the run event went out.
    assert (await activity_endings(handle))[-2:] == [("sleep:-1:1", "canceled"), ("publish_run_event", "completed")]
    event = await published_run_event(handle)
    assert event.state == "failed" and "cancelled" in event.error
    # As when a user sets an Airflow run to failed: running tasks fail, unfinished ones are skipped.
    assert {ti.task_id: (ti.state, ti.try_number) for ti in event.task_instances} == {
        "begin": ("success", 1),
        "sleep": ("failed", 1),
        "after": ("skipped", 0),
    }


async def test_pool_runs_tasks_after_a_task_ignored_its_stop(run_dag: DagRunner, tmp_path: Path) -> None:
    handle = await start_long_task(run_dag, "long_task_stubborn", tmp_path)

    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await asyncio.wait_for(handle.result(), RUN_END_TIMEOUT)

    # The task swallowed the stop, so its process was killed, and the pool replaced.
    with pytest.raises(ProcessLookupError):
        os.kill(int((tmp_path / "started").read_text()), 0)
    assert ("sleep:-1:1", "canceled") in await activity_endings(handle)
    result = await run_dag("parallel_sleepers")
    assert result.state == "success"


async def test_dagrun_timeout_fails_the_run_and_stops_its_task(run_dag: DagRunner, tmp_path: Path) -> None:
    handle = await run_dag.start("long_task_timeout", conf={"marker_dir": str(tmp_path)})

    result = await asyncio.wait_for(handle.result(), RUN_END_TIMEOUT)

    assert result.state == "failed" and "dagrun_timeout" in result.error
    assert (tmp_path / "killed").exists()
    # As Airflow's scheduler does on a timeout: every unfinished task instance is skipped.
    assert {ti.task_id: (ti.state, ti.try_number) for ti in result.task_instances} == {
        "begin": ("success", 1),
        "sleep": ("skipped", 1),
        "after": ("skipped", 0),
    }
    assert (await activity_endings(handle))[-2:] == [("sleep:-1:1", "canceled"), ("publish_run_event", "completed")]
    event = await published_run_event(handle)
    assert (event.state, event.error) == ("failed", result.error)
    assert {ti.task_id: ti.state for ti in event.task_instances} == {
        "begin": "success",
        "sleep": "skipped",
        "after": "skipped",
    }


async def test_cli_cancels_a_running_run_and_refuses_a_closed_one(
    run_dag: DagRunner, worker_settings: Settings, tmp_path: Path
) -> None:
    handle = await start_long_task(run_dag, "long_task", tmp_path)
    run_id = (await handle.describe()).id.removeprefix("dagrun:long_task:")

    cancelled = await asyncio.to_thread(cancel_command, worker_settings, "long_task", run_id)

    assert cancelled.returncode == 0, cancelled.stderr
    assert f"DAG run long_task {run_id} cancelled" in cancelled.stdout
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    again = await asyncio.to_thread(cancel_command, worker_settings, "long_task", run_id)
    assert again.returncode == 1
    assert "already ended: canceled" in again.stderr


def test_cli_cancel_of_an_unknown_run_fails_clearly(worker_settings: Settings) -> None:
    unknown = cancel_command(worker_settings, "long_task", "never_started")

    assert unknown.returncode == 1
    assert "no DAG run long_task never_started (no workflow dagrun:long_task:never_started)" in unknown.stderr
