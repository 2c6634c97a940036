"""Pools and Airflow's max_active_* limits, across runs and workers, on a real Temporal server."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from schemas.ids import LimitKind, limit_workflow_id
from schemas.limits import LimitState
from schemas.names import CONCURRENCY_LIMIT_WORKFLOW
from schemas.runs import RunOptions
from schemas.settings import Settings
from tests.bridge_fixtures import running_worker
from tests.harness import DagRunner, wait_until_running
from tests.history import activity_times, most_at_once, scheduled_activities
from tests.processes import WorkerProcess

Interval = tuple[datetime, datetime]


async def try_intervals(handle: WorkflowHandle, task_ids: set[str] | None = None) -> list[Interval]:
    """From scheduling (after the slots were granted) to completion of each task try."""
    tries = {activity_id for kind, activity_id, _ in await scheduled_activities(handle) if kind == "run_task_try"}
    return [
        (scheduled, completed)
        for activity_id, (scheduled, completed) in (await activity_times(handle)).items()
        if activity_id in tries
        and completed is not None
        and (task_ids is None or activity_id.split(":")[0] in task_ids)
    ]


@asynccontextmanager
async def pools_of_its_own(base: Settings, name: str, pools: dict[str, int]) -> AsyncIterator[dict[str, Any]]:
    """A worker of the test's own that declares ``pools``, on a task queue of its own; yields
    the arguments that start a run there. No other test's runs share these pools' slots."""
    settings = base.model_copy(update={"task_queue": f"dagbridge-tests-limits-{name}", "pools": pools})
    async with running_worker(settings):
        yield {
            "task_queue": settings.task_queue,
            "options": RunOptions(default_task_queue=settings.task_queue, task_heartbeat_timeout_seconds=5),
        }


async def run_together(run_dag: DagRunner, dag_id: str, runs: int, **kwargs: Any) -> list[WorkflowHandle]:
    handles = [await run_dag.start(dag_id, **kwargs) for _ in range(runs)]
    results = await asyncio.gather(*(handle.result() for handle in handles))
    assert [result.state for result in results] == ["success"] * runs
    return handles


async def test_a_pool_of_two_never_runs_more_than_two_tasks_across_runs(
    run_dag: DagRunner, worker_settings: Settings
) -> None:
    async with pools_of_its_own(worker_settings, "pair", {"pair": 2}) as on_its_worker:
        handles = await run_together(run_dag, "limits_pool_pair", 3, **on_its_worker)

    intervals = [interval for handle in handles for interval in await try_intervals(handle)]
    assert len(intervals) == 6
    assert most_at_once(intervals) == 2


async def test_waiting_tasks_get_the_slot_by_priority_weight(run_dag: DagRunner, worker_settings: Settings) -> None:
    async with pools_of_its_own(worker_settings, "priorities", {"single": 1}) as on_its_worker:
        (handle,) = await run_together(run_dag, "limits_priorities", 1, **on_its_worker)

    tries = [
        activity_id.split(":")[0]
        for kind, activity_id, _ in await scheduled_activities(handle)
        if kind == "run_task_try"
    ]
    assert tries == ["high", "middle", "low"]
    assert most_at_once(await try_intervals(handle)) == 1


async def test_max_active_runs_queues_the_next_run_until_one_ends(run_dag: DagRunner) -> None:
    first, second = [await run_dag.start("limits_one_run_at_a_time") for _ in range(2)]
    results = await asyncio.gather(first.result(), second.result())

    assert [result.state for result in results] == ["success", "success"]
    first_run = (results[0].start_date, results[0].end_date)
    second_run = (results[1].start_date, results[1].end_date)
    assert most_at_once([first_run, second_run]) == 1


async def test_max_active_tasks_limits_the_tasks_of_one_run(run_dag: DagRunner) -> None:
    (handle,) = await run_together(run_dag, "limits_one_task_at_a_time", 1)

    intervals = await try_intervals(handle)
    assert len(intervals) == 3
    assert most_at_once(intervals) == 1


async def test_max_active_tis_per_dag_limits_a_task_across_runs(run_dag: DagRunner) -> None:
    handles = await run_together(run_dag, "limits_task_once_across_runs", 2)

    exclusive = [interval for handle in handles for interval in await try_intervals(handle, {"exclusive"})]
    free = [interval for handle in handles for interval in await try_intervals(handle, {"free"})]
    assert most_at_once(exclusive) == 1
    assert len(exclusive) == len(free) == 2


async def test_an_undeclared_pool_fails_the_task_with_a_clear_message(run_dag: DagRunner) -> None:
    handle = await run_dag.start("limits_undeclared_pool")
    result = await handle.result()

    assert result.state == "failed"
    assert [(ti.task_id, ti.state, ti.try_number) for ti in result.task_instances] == [("never", "failed", 1)]
    kinds = [kind for kind, _, _ in await scheduled_activities(handle)]
    assert "run_task_try" not in kinds
    assert kinds.count("publish_task_event") == 1
    history = await handle.fetch_history()
    failed_try = next(
        event.activity_task_scheduled_event_attributes.input.payloads[0].data
        for event in history.events
        if event.activity_task_scheduled_event_attributes.activity_type.name == "publish_task_event"
    )
    assert b"pool 'nowhere' is not declared in DAGBRIDGE_POOLS" in failed_try


async def test_the_limit_continues_as_new_and_keeps_its_holders_and_waiters(
    run_dag: DagRunner, temporal_client: Client, worker_settings: Settings
) -> None:
    limit_id = limit_workflow_id(LimitKind.POOL, "renewed")
    await temporal_client.start_workflow(
        CONCURRENCY_LIMIT_WORKFLOW,
        LimitState(limit_id=limit_id, capacity=1, holder_check_seconds=1, max_history_events=20),
        id=limit_id,
        task_queue=worker_settings.limits_task_queue,
    )
    async with pools_of_its_own(worker_settings, "renewed", {"renewed": 1}) as on_its_worker:
        handles = await run_together(run_dag, "limits_renewed", 4, **on_its_worker)

    runs = [execution async for execution in temporal_client.list_workflows(f"WorkflowId = '{limit_id}'")]
    assert len(runs) > 2, "the limit never continued as new"
    assert most_at_once([interval for handle in handles for interval in await try_intervals(handle)]) == 1


async def test_the_slot_of_a_terminated_run_is_reclaimed_for_the_runs_waiting(
    run_dag: DagRunner, worker_settings: Settings
) -> None:
    async with pools_of_its_own(worker_settings, "terminated", {"terminated_holder": 1}) as on_its_worker:
        holder = await run_dag.start("limits_terminated_holder", **on_its_worker)
        await wait_until_running(holder, "slow:-1:1")
        waiting = await run_dag.start("limits_terminated_holder", **on_its_worker)

        # Terminated: no code of the run gives the slot back, the limit must notice.
        await holder.terminate("test")
        result = await asyncio.wait_for(waiting.result(), timeout=60)

    assert result.state == "success"


async def test_a_killed_worker_holding_a_slot_does_not_leak_it(
    run_dag: DagRunner, worker_settings: Settings, worker_processes: list[WorkerProcess], tmp_path: Path
) -> None:
    queue = "dagbridge-tests-limits-killed"
    settings = worker_settings.model_copy(
        update={"task_queue": queue, "task_processes": 2, "pools": {"killed_worker": 1}}
    )
    worker_processes.append(WorkerProcess(settings, tmp_path / "first-worker.log"))
    options = RunOptions(default_task_queue=queue, task_heartbeat_timeout_seconds=2)
    holder = await run_dag.start("limits_killed_worker", task_queue=queue, options=options)
    await wait_until_running(holder, "slow:-1:1")
    waiting = await run_dag.start("limits_killed_worker", task_queue=queue, options=options)

    worker_processes[0].kill()
    worker_processes.append(WorkerProcess(settings, tmp_path / "second-worker.log"))
    results = await asyncio.wait_for(asyncio.gather(holder.result(), waiting.result()), timeout=120)

    assert [result.state for result in results] == ["success", "success"]
    intervals = await try_intervals(holder) + await try_intervals(waiting)
    assert len(intervals) == 2
    assert most_at_once(intervals) == 1


@workflow.defn(sandboxed=False)
class CollectGarbage:
    """Any workflow: Python may collect garbage at any allocation, also inside a workflow task."""

    @workflow.run
    async def run(self) -> None:
        gc.collect()


async def test_a_run_left_behind_by_a_stopped_worker_does_nothing_in_another_workflow(
    run_dag: DagRunner, temporal_client: Client, worker_settings: Settings
) -> None:
    # A worker that stops does not evict the workflows in its cache: the coroutine of a run it
    # leaves behind is closed by the garbage collector later, on whatever thread collects, while
    # whichever workflow runs there is the current one.
    settings = worker_settings.model_copy(
        update={"task_queue": "dagbridge-tests-limits-left-behind", "task_processes": 1, "pools": {"left_behind": 1}}
    )
    options = RunOptions(default_task_queue=settings.task_queue, task_heartbeat_timeout_seconds=2)
    async with running_worker(settings):
        left_behind = await run_dag.start("limits_left_behind", task_queue=settings.task_queue, options=options)
        await wait_until_running(left_behind, "slow:-1:1")

    queue = "dagbridge-tests-collect-garbage"
    async with Worker(temporal_client, task_queue=queue, workflows=[CollectGarbage]):
        collector = await temporal_client.start_workflow(
            CollectGarbage.run, id=f"collect-garbage:{left_behind.id}", task_queue=queue
        )
        await collector.result()
    history = await collector.fetch_history()
    commands_of_others = {EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, EventType.EVENT_TYPE_MARKER_RECORDED}
    assert not [event for event in history.events if event.event_type in commands_of_others]

    # The run itself goes on, on the next worker, with the slots it holds.
    async with running_worker(settings):
        result = await asyncio.wait_for(left_behind.result(), timeout=60)
    assert result.state == "success"
