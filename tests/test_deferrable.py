"""Deferred tasks on real Temporal: no task process while they wait, timers for time triggers,
triggers that survive their worker, and a trigger timeout that fails the task as Airflow does."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import CancelledError

from schemas.ids import dag_run_workflow_id, triggers_task_queue
from schemas.names import PUBLISH_TASK_EVENT_ACTIVITY, RUN_TASK_TRY_ACTIVITY, RUN_TRIGGER_ACTIVITY
from schemas.runs import RunOptions, TaskState
from schemas.settings import Settings
from tests.harness import TASK_QUEUE, DagRunner
from tests.history import published_run_event, scheduled_activities, try_results
from tests.processes import WorkerProcess
from tests.servers import free_port

QUEUE = "dagbridge-tests-deferrable"
# Deferred tasks waiting when their worker is killed, and waiting at once on one worker.
KILLED_WIDTH = 50
WIDE = 1000


async def test_time_triggers_are_timers_and_other_triggers_activities(run_dag: DagRunner) -> None:
    result = await run_dag("conformance_deferrable")

    assert result.state == "success"
    handle = run_dag.client.get_workflow_handle(dag_run_workflow_id(result.dag_id, result.run_id))
    activities = await scheduled_activities(handle)
    triggers = sorted(activity_id for kind, activity_id, _ in activities if kind == RUN_TRIGGER_ACTIVITY)
    assert triggers == [
        "broken:-1:1:trigger-0",
        "from_trigger:-1:1:trigger-0",
        "mapped_polled:0:1:trigger-0",
        "mapped_polled:1:1:trigger-0",
        "mapped_polled:2:1:trigger-0",
        "polled:-1:1:trigger-0",
        "twice:-1:1:trigger-0",
        "twice:-1:1:trigger-1",
    ]
    tries = {activity_id for kind, activity_id, _ in activities if kind == RUN_TASK_TRY_ACTIVITY}
    # Each deferral resumes the same try in a new activity; time sensors resume after a timer.
    assert {"twice:-1:1", "twice:-1:1:resume-1", "twice:-1:1:resume-2"} <= tries
    assert {"time_delta:-1:1", "time_delta:-1:1:resume-1", "date_time:-1:1:resume-1"} <= tries
    # start_from_trigger: Airflow's scheduler deferred it; its first task process is the resumption.
    assert {activity_id for activity_id in tries if activity_id.startswith("from_trigger:")} == {
        "from_trigger:-1:1:resume-1"
    }


async def test_a_trigger_that_ends_the_task_needs_no_task_process_to_end_it(run_dag: DagRunner) -> None:
    handle = await run_dag.start("deferrable_ends_in_trigger")
    result = await handle.result()

    assert result.state == "success"
    assert [(ti.task_id, ti.state, ti.try_number) for ti in result.task_instances] == [("wait", "success", 1)]
    # One task process ran it (until it deferred); the timer ended it; no trigger activity, no resumption.
    activities = await scheduled_activities(handle)
    assert [activity_id for kind, activity_id, _ in activities if kind == RUN_TASK_TRY_ACTIVITY] == ["wait:-1:1"]
    # The workflow published the try's end, which no activity saw.
    kinds = [kind for kind, _, _ in activities]
    assert RUN_TRIGGER_ACTIVITY not in kinds and kinds.count(PUBLISH_TASK_EVENT_ACTIVITY) == 1


async def test_trigger_timeout_fails_the_task_and_cleans_up_its_trigger(run_dag: DagRunner, tmp_path: Path) -> None:
    marker = tmp_path / "trigger"
    handle = await run_dag.start("deferrable_edges", conf={"marker": str(marker)})
    result = await handle.result()

    # As in Airflow, the run's state is its leaf's: the all_done task after the failed one succeeded.
    assert result.state == "success"
    assert {ti.task_id: (ti.state, ti.try_number) for ti in result.task_instances} == {
        "timed_out": ("failed", 1),
        "after": ("success", 1),
    }
    # Deferred, then resumed with next_method="__fail__" as Airflow's scheduler does: the runner raised.
    results = await try_results(handle)
    assert results["timed_out:-1:1"].state is TaskState.DEFERRED
    resumed = results["timed_out:-1:1:resume-1"]
    assert (resumed.state, resumed.error and resumed.error.type) == (TaskState.FAILED, "TaskDeferralTimeout")
    # The run ended; its cancelled trigger still gets cleanup() once its worker hears of it.
    async with asyncio.timeout(60):
        while not (marker.exists() and any(marker.iterdir())):
            await asyncio.sleep(0.2)
    assert len(list(marker.iterdir())) == 1


async def test_cancelling_a_run_fails_its_deferred_tasks_and_kills_their_triggers(
    run_dag: DagRunner, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    # A short trigger heartbeat: the cancellation reaches the triggers with their next heartbeat.
    options = RunOptions(default_task_queue=TASK_QUEUE, trigger_heartbeat_timeout_seconds=2)
    handle = await run_dag.start("deferrable_many", conf={"gate": str(gate), "width": 3}, options=options)
    async with asyncio.timeout(120):
        while True:
            pending = (await handle.describe()).raw_description.pending_activities
            if sum(p.activity_type.name == RUN_TRIGGER_ACTIVITY and p.attempt == 1 for p in pending) == 3:
                break
            await asyncio.sleep(0.2)

    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()

    assert isinstance(failure.value.cause, CancelledError)
    event = await published_run_event(handle)
    # As Airflow's "mark run failed": deferred task instances fail, those not started are skipped.
    assert {(ti.task_id, ti.map_index): ti.state for ti in event.task_instances} == {
        ("indexes", -1): "success",
        ("wait", 0): "failed",
        ("wait", 1): "failed",
        ("wait", 2): "failed",
        ("total", -1): "skipped",
    }
    # Their triggers were cancelled as by a user action: on_kill() ran for each, on the worker.
    killed = Path(f"{gate}.killed")
    async with asyncio.timeout(60):
        while not (killed.exists() and len(list(killed.iterdir())) == 3):
            await asyncio.sleep(0.2)


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {sample.name: sample.value for family in text_string_to_metric_families(text) for sample in family.samples}


async def gauge_reaches(port: int, name: str, wanted: float, timeout: float = 300) -> dict[str, float]:
    async with asyncio.timeout(timeout):
        while True:
            try:
                samples = await asyncio.to_thread(scrape, port)
            except OSError:
                samples = {}
            if samples.get(name) == wanted:
                return samples
            await asyncio.sleep(0.5)


async def test_waiting_triggers_hold_no_task_process_and_survive_their_worker(
    run_dag: DagRunner,
    temporal_client: Client,
    worker_settings: Settings,
    worker_processes: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    first_port, second_port = free_port(), free_port()
    settings = worker_settings.model_copy(update={"task_queue": QUEUE, "task_processes": 2})
    worker_processes.append(
        WorkerProcess(settings.model_copy(update={"metrics_port": first_port}), tmp_path / "first-worker.log")
    )
    gate = tmp_path / "gate"
    handle = await run_dag.start(
        "deferrable_many",
        conf={"gate": str(gate), "width": KILLED_WIDTH},
        task_queue=QUEUE,
        options=RunOptions(
            default_task_queue=QUEUE, task_heartbeat_timeout_seconds=2, trigger_heartbeat_timeout_seconds=2
        ),
    )

    # Every mapped task deferred: all their triggers wait on the one worker, no task process is busy.
    samples = await gauge_reaches(first_port, "dagbridge_waiting_triggers", KILLED_WIDTH)
    assert samples["dagbridge_busy_task_processes"] == 0

    worker_processes[0].kill()
    worker_processes.append(
        WorkerProcess(settings.model_copy(update={"metrics_port": second_port}), tmp_path / "second-worker.log")
    )
    # The triggers start again on the second worker once the first one's heartbeats are missed.
    samples = await gauge_reaches(second_port, "dagbridge_waiting_triggers", KILLED_WIDTH)
    assert samples["dagbridge_busy_task_processes"] == 0
    gate.touch()
    result = await asyncio.wait_for(handle.result(), timeout=600)

    assert result.state == "success"
    waits = [ti for ti in result.task_instances if ti.task_id == "wait"]
    assert {(ti.state, ti.try_number) for ti in waits} == {("success", 1)}
    assert {ti.map_index: ti.xcom["return_value"] for ti in waits} == {index: index for index in range(KILLED_WIDTH)}
    # Every task resumed exactly once.
    resumed = sorted(int(path.name.split("-")[0]) for path in Path(f"{gate}.resumed").iterdir())
    assert resumed == list(range(KILLED_WIDTH))
    queues = {queue for kind, _, queue in await scheduled_activities(handle) if kind == RUN_TRIGGER_ACTIVITY}
    assert queues == {triggers_task_queue(QUEUE)}


async def started_triggers(client: Client, workflow_id: str) -> int:
    """Trigger activities a worker runs for the run's current workflow (it may have continued as new)."""
    pending = (await client.get_workflow_handle(workflow_id).describe()).raw_description.pending_activities
    return sum(
        p.activity_type.name == RUN_TRIGGER_ACTIVITY and p.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
        for p in pending
    )


async def test_a_thousand_waiting_triggers_hold_no_task_process(
    run_dag: DagRunner, worker_settings: Settings, worker_processes: list[WorkerProcess], tmp_path: Path
) -> None:
    port = free_port()
    settings = worker_settings.model_copy(update={"task_queue": QUEUE, "task_processes": 2, "metrics_port": port})
    worker_processes.append(WorkerProcess(settings, tmp_path / "worker.log"))
    gate = tmp_path / "gate"
    handle = await run_dag.start(
        "deferrable_many",
        conf={"gate": str(gate), "width": WIDE},
        task_queue=QUEUE,
        # A trigger whose workflow continued as new (its history grows with a thousand tries) learns
        # it within a heartbeat and ends; the next workflow started it again.
        options=RunOptions(default_task_queue=QUEUE, trigger_heartbeat_timeout_seconds=30),
    )

    # Every mapped task deferred: the run's current workflow has all its triggers running, and the
    # one worker runs exactly those (no trigger of an earlier workflow of the run), no task process busy.
    async with asyncio.timeout(1200):
        while await started_triggers(run_dag.client, handle.id) < WIDE:
            await asyncio.sleep(2)
    samples = await gauge_reaches(port, "dagbridge_waiting_triggers", WIDE)
    assert samples["dagbridge_busy_task_processes"] == 0
    assert await started_triggers(run_dag.client, handle.id) == WIDE

    gate.touch()
    result = await asyncio.wait_for(handle.result(), timeout=1200)

    assert result.state == "success"
    waits = [ti for ti in result.task_instances if ti.task_id == "wait"]
    assert {(ti.state, ti.try_number) for ti in waits} == {("success", 1)}
    assert next(ti for ti in result.task_instances if ti.task_id == "total").xcom["return_value"] == sum(range(WIDE))
    # Each task resumed once, however many times its trigger was started.
    resumed = sorted(int(path.name.split("-")[0]) for path in Path(f"{gate}.resumed").iterdir())
    assert resumed == list(range(WIDE))
    # Not killed by a workflow that continued as new: no run was cancelled.
    assert not Path(f"{gate}.killed").exists()
