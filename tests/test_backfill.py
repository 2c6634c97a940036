"""Backfills through real Temporal: Airflow's intervals, each run once, reprocessing, cancelling."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from airflow.models.dagrun import DagRun
from airflow.utils.types import DagRunType
from temporalio.client import Client

from activities.timetables import scheduler_view
from dagbridge.schedule_commands import backfill_progress, start_backfill
from schemas.ids import backfill_workflow_id, dag_run_workflow_id
from schemas.runs import RunOptions
from schemas.schedules import BackfillOutcome, ReprocessBehavior
from schemas.settings import Settings
from tests.processes import settings_environment
from tests.schedule_fixtures import (
    end_schedule,
    eventually,
    load_dag,
    run_ids_of,
    schedule_settings,
    schedule_worker,
    write_dag,
)

FROM, TO = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 5, tzinfo=UTC)


def airflow_backfill_run_ids(dag: object, from_date: datetime, to_date: datetime) -> list[str]:
    """What ``airflow backfill create`` names its runs: the DAG's intervals between the dates."""
    return [
        DagRun.generate_run_id(
            run_type=DagRunType.BACKFILL_JOB, logical_date=info.logical_date, run_after=info.run_after
        )
        for info in scheduler_view(dag).iter_dagrun_infos_between(from_date, to_date)
    ]


async def test_backfill_twice_creates_each_run_once_and_reprocesses_on_request(
    temporal_client: Client, worker_settings: Settings, tmp_path: Path
) -> None:
    dag_id = "backfill_daily"
    # Paused: the schedule starts nothing, so every run here is the backfill's.
    path = write_dag(tmp_path, dag_id, "'@daily'", FROM, catchup=False, paused=True)
    expected = airflow_backfill_run_ids(load_dag(path, dag_id), FROM, TO)
    assert len(expected) == 5
    settings = schedule_settings(worker_settings, tmp_path, "backfills")
    options = RunOptions(default_task_queue=settings.task_queue)
    try:
        async with schedule_worker(settings, temporal_client, [dag_id]):
            first = await (
                await start_backfill(temporal_client, settings.task_queue, dag_id, FROM, TO, options=options)
            ).result()
            assert [item.run_id for item in first.items] == expected
            assert {(item.outcome, item.state) for item in first.items} == {(BackfillOutcome.STARTED, "success")}

            second = await (
                await start_backfill(temporal_client, settings.task_queue, dag_id, FROM, TO, options=options)
            ).result()
            assert {item.outcome for item in second.items} == {BackfillOutcome.ALREADY_EXISTS}
            assert {item.state for item in second.items} == {None}, "nothing new ran"

            # The command line says the same and exits 0.
            # Not subprocess.run: this event loop runs the worker that must serve the command.
            command = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "dagbridge.cli",
                "backfill",
                dag_id,
                "--from",
                FROM.isoformat(),
                "--to",
                TO.isoformat(),
                env=settings_environment(settings)
                | {"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(tmp_path / "airflow")},
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            stdout, stderr = await asyncio.wait_for(command.communicate(), timeout=120)
            assert command.returncode == 0, stderr.decode()
            assert "0 started, 0 reprocessed, 5 already existed" in stdout.decode()

            async def all_listed() -> bool:
                return len(await run_ids_of(temporal_client, dag_id)) >= 5

            await eventually(all_listed, "the backfill runs in visibility")
            assert await run_ids_of(temporal_client, dag_id) == sorted(expected)

            again = await (
                await start_backfill(
                    temporal_client,
                    settings.task_queue,
                    dag_id,
                    FROM,
                    TO,
                    reprocess_behavior=ReprocessBehavior.COMPLETED,
                    max_active_runs=1,
                    options=options,
                )
            ).result()
            assert {(item.outcome, item.state) for item in again.items} == {(BackfillOutcome.REPROCESSED, "success")}

            async def each_ran_twice() -> bool:
                counts = [await _executions(temporal_client, dag_id, run_id) for run_id in expected]
                return counts == [2] * len(expected)

            # Reprocessing runs the same (dag_id, run_id) again: a second execution of its workflow ID.
            await eventually(each_ran_twice, "a second execution of every run")
    finally:
        await end_schedule(temporal_client, dag_id)


async def chain_length(client: Client, workflow_id: str) -> int:
    """Executions of the workflow's latest continue-as-new chain, read from the histories themselves."""
    count, run_id = 0, (await client.get_workflow_handle(workflow_id).describe()).run_id
    while run_id:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        count += 1
        run_id = history.events[0].workflow_execution_started_event_attributes.continued_execution_run_id
    return count


async def _executions(client: Client, dag_id: str, run_id: str) -> int:
    return len([e async for e in client.list_workflows(f"WorkflowId = '{dag_run_workflow_id(dag_id, run_id)}'")])


async def test_cancelled_backfill_starts_no_more_runs(
    temporal_client: Client, worker_settings: Settings, tmp_path: Path
) -> None:
    dag_id = "backfill_blocking"
    signals = tmp_path / "signals"
    signals.mkdir()
    body = (
        "import pathlib, time\n"
        f"        signals = pathlib.Path({str(signals)!r})\n"
        '        (signals / (run_id + ".started")).touch()\n'
        '        while not (signals / "release").exists():\n'
        "            time.sleep(0.1)"
    )
    dags = tmp_path / "dags"
    dags.mkdir()
    write_dag(dags, dag_id, "'@daily'", FROM, catchup=False, paused=True, body=body)
    settings = schedule_settings(worker_settings, dags, "backfills-cancel")
    try:
        async with schedule_worker(settings, temporal_client, [dag_id]):
            handle = await start_backfill(
                temporal_client,
                settings.task_queue,
                dag_id,
                FROM,
                TO,
                max_active_runs=1,
                options=RunOptions(default_task_queue=settings.task_queue),
            )

            async def first_started() -> bool:
                return any(signals.glob("*.started"))

            await eventually(first_started, "the first backfill run inside its task")
            await handle.cancel()
            progress = await handle.result()
            assert progress.cancelled
            assert [item.outcome for item in progress.items] == [BackfillOutcome.STARTED] + [None] * 4
            assert (await backfill_progress(handle)).cancelled
            (signals / "release").touch()
            assert len(list(signals.glob("*.started"))) == 1
    finally:
        await end_schedule(temporal_client, dag_id)


async def test_a_long_backfill_continues_as_new_and_still_runs_each_interval_once_in_order(
    temporal_client: Client, worker_settings: Settings, tmp_path: Path
) -> None:
    dag_id = "backfill_long"
    until = FROM + timedelta(days=9)
    path = write_dag(tmp_path, dag_id, "'@daily'", FROM, catchup=False, paused=True)
    expected = airflow_backfill_run_ids(load_dag(path, dag_id), FROM, until)
    assert len(expected) == 10
    settings = schedule_settings(worker_settings, tmp_path, "backfills-long")
    # A bound one to three starts long (a start and its child's start and end are three events at
    # least): ten intervals cannot fit in fewer than three executions.
    options = RunOptions(default_task_queue=settings.task_queue, history_events_per_workflow=15)
    try:
        async with schedule_worker(settings, temporal_client, [dag_id]):
            handle = await start_backfill(
                temporal_client, settings.task_queue, dag_id, FROM, until, max_active_runs=2, options=options
            )
            progress = await handle.result()
            assert [item.run_id for item in progress.items] == expected
            assert {(item.outcome, item.state) for item in progress.items} == {(BackfillOutcome.STARTED, "success")}
            executions = await chain_length(temporal_client, backfill_workflow_id(dag_id, FROM, until))
            assert executions >= 3, f"two continue-as-new at least, {executions} executions"

            async def all_listed() -> bool:
                return len(await run_ids_of(temporal_client, dag_id)) >= len(expected)

            await eventually(all_listed, "the backfill runs in visibility")
            assert await run_ids_of(temporal_client, dag_id) == sorted(expected), "each interval ran once"

            again = await (
                await start_backfill(temporal_client, settings.task_queue, dag_id, FROM, until, options=options)
            ).result()
            assert {item.outcome for item in again.items} == {BackfillOutcome.ALREADY_EXISTS}
    finally:
        await end_schedule(temporal_client, dag_id)
