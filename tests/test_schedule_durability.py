"""A worker SIGKILLed across ticks: every interval still gets exactly one run.

The race is made on purpose: the first worker is killed while the first tick's run is inside its
task (the task waits for a release file), and no worker runs while the second tick passes. The
next worker replays the schedule from its history (no cache) and must neither start the first
tick again nor skip or double the second.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client

from schemas.ids import dag_run_workflow_id, schedule_workflow_id
from schemas.runs import DagRunResult, RunType
from schemas.settings import Settings
from tests.processes import WorkerProcess
from tests.schedule_fixtures import (
    end_schedule,
    eventually,
    floor_second,
    load_dag,
    now,
    run_closed,
    run_ids_of,
    run_request,
    schedule_settings,
    write_dag,
)
from tests.timetable_oracle import oracle

BLOCKING_BODY = """\
import pathlib, time
        signals = pathlib.Path({folder!r})
        (signals / (run_id + ".started")).touch()
        while not (signals / "release").exists():
            time.sleep(0.1)"""


async def child_starts(client: Client, dag_id: str) -> Counter[str]:
    """How many times every execution of the DAG's schedule asked to start each run."""
    starts: Counter[str] = Counter()
    async for execution in client.list_workflows(f"WorkflowId = '{schedule_workflow_id(dag_id)}'"):
        history = await client.get_workflow_handle(execution.id, run_id=execution.run_id).fetch_history()
        for event in history.events:
            if event.HasField("start_child_workflow_execution_initiated_event_attributes"):
                starts[event.start_child_workflow_execution_initiated_event_attributes.workflow_id] += 1
    return starts


async def test_worker_killed_across_ticks_gives_one_run_per_tick(
    temporal_client: Client, worker_settings: Settings, tmp_path: Path
) -> None:
    dag_id = "sched_killed"
    dags, signals = tmp_path / "dags", tmp_path / "signals"
    dags.mkdir()
    signals.mkdir()
    settings = schedule_settings(worker_settings, dags, "schedules-killed").model_copy(
        update={"task_heartbeat_timeout_seconds": 2}
    )
    first_log = tmp_path / "first-worker.log"
    workers = [WorkerProcess(settings, first_log)]
    try:
        # The ticks are laid out once the worker serves: a slow start must not let them pass first.
        async def worker_ready() -> bool:
            return first_log.exists() and "worker ready" in first_log.read_text(errors="replace")

        await eventually(worker_ready, "the first worker to serve")
        start = floor_second(now()) + timedelta(seconds=3)
        path = write_dag(
            dags,
            dag_id,
            "datetime.timedelta(seconds=3)",
            start,
            start + timedelta(seconds=6),
            body=BLOCKING_BODY.format(folder=str(signals)),
        )
        expected = oracle(load_dag(path, dag_id))
        run_ids = [run[3] for run in expected]
        assert len(run_ids) == 3

        async def first_tick_in_its_task() -> bool:
            return (signals / f"{run_ids[0]}.started").exists()

        await eventually(first_tick_in_its_task, "the first tick's run to be inside its task")
        workers[0].kill()

        second_tick = expected[1][2]

        async def second_tick_passed() -> bool:
            return now() > second_tick + timedelta(seconds=1)

        await eventually(second_tick_passed, "the second tick to pass with no worker")
        workers.append(WorkerProcess(settings, tmp_path / "second-worker.log"))
        (signals / "release").touch()

        async def all_ran() -> bool:
            return all([await run_closed(temporal_client, dag_id, run_id) for run_id in run_ids])

        await eventually(all_ran, "the three runs to end")
        assert await run_ids_of(temporal_client, dag_id) == sorted(run_ids)
        starts = await child_starts(temporal_client, dag_id)
        assert sorted(starts.values()) == [1, 1, 1], f"each tick started once: {starts}"
        for run_id, run in zip(run_ids, expected, strict=True):
            request = await run_request(temporal_client, dag_id, run_id)
            assert request.run_type is RunType.SCHEDULED
            assert (request.logical_date, request.run_after) == (run[0], run[2])
            handle = temporal_client.get_workflow_handle(dag_run_workflow_id(dag_id, run_id), result_type=DagRunResult)
            assert (await handle.result()).state == "success", "the killed try was retried and the run succeeded"
    finally:
        for worker in workers:
            worker.terminate()
        await end_schedule(temporal_client, dag_id)
