"""Scheduled runs through real Temporal: Airflow's timetable decides, each interval starts once.

Every DAG file here is written by its test into a folder of its own, served by a worker of its own
(see tests/schedule_fixtures.py). Windows that lie wholly in the past are caught up at once, so the
conformance of every schedule kind is checked without waiting for the clock.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.client import Client

from dagbridge.schedule_commands import NoSchedule, schedule_status, set_paused
from schemas.ids import dag_run_workflow_id, schedule_workflow_id
from schemas.runs import RunType
from schemas.settings import Settings
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
    schedule_worker,
    write_dag,
)
from tests.timetable_oracle import oracle


def minute_window() -> tuple[datetime, datetime]:
    """Three whole minutes that ended at least a minute ago."""
    start = now().replace(second=0, microsecond=0) - timedelta(minutes=5)
    return start, start + timedelta(minutes=2)


async def test_every_schedule_kind_through_temporal_is_the_timetables(
    temporal_client: Client, worker_settings: Settings, tmp_path: Path
) -> None:
    seconds_start = floor_second(now()) - timedelta(minutes=2)
    seconds_end = seconds_start + timedelta(seconds=8)
    minutes_start, minutes_end = minute_window()
    events = ", ".join(f"pendulum.instance({seconds_start + timedelta(seconds=s)!r})" for s in (0, 3, 4))
    kinds = {
        "sched_timedelta": ("datetime.timedelta(seconds=2)", seconds_start, seconds_end),
        "sched_cron": ("'* * * * *'", minutes_start, minutes_end),
        "sched_cron_trigger": (
            "CronTriggerTimetable('* * * * *', timezone='Europe/Paris')",
            minutes_start,
            minutes_end,
        ),
        "sched_cron_data": (
            "CronDataIntervalTimetable('* * * * *', timezone='Asia/Kolkata')",
            minutes_start,
            minutes_end,
        ),
        "sched_multiple_cron": (
            "MultipleCronTriggerTimetable('* * * * *', '*/2 * * * *', timezone='UTC')",
            minutes_start,
            minutes_end,
        ),
        "sched_delta_data": ("DeltaDataIntervalTimetable(datetime.timedelta(seconds=3))", seconds_start, seconds_end),
        "sched_delta_trigger": (
            "DeltaTriggerTimetable(datetime.timedelta(seconds=3), interval=datetime.timedelta(seconds=1))",
            seconds_start,
            seconds_end,
        ),
        "sched_events": (f"EventsTimetable([{events}])", seconds_start, seconds_end),
        "sched_plugin": ("AlternatingTimetable(short=1, long=2)", seconds_start, seconds_end),
    }
    expected = {}
    for dag_id, (schedule, start, end) in kinds.items():
        path = write_dag(tmp_path, dag_id, schedule, start, end)
        expected[dag_id] = oracle(load_dag(path, dag_id))
        assert len(expected[dag_id]) >= 2, f"{dag_id}: the window must hold a few runs"

    settings = schedule_settings(worker_settings, tmp_path, "schedules-kinds")
    try:
        async with schedule_worker(settings, temporal_client, list(kinds)):
            for dag_id, runs in expected.items():
                run_ids = [run[3] for run in runs]

                async def all_ran(dag_id: str = dag_id, run_ids: list[str] = run_ids) -> bool:
                    done = await asyncio.gather(*(run_closed(temporal_client, dag_id, r) for r in run_ids))
                    return all(done)

                await eventually(all_ran, f"the {len(run_ids)} runs of {dag_id}")
                status = await schedule_status(temporal_client, dag_id)
                assert status.next_run is None, f"{dag_id}: the window is over"
                assert status.runs_started == len(runs)
                assert await run_ids_of(temporal_client, dag_id) == sorted(run_ids)
                produced = []
                for run_id in run_ids:
                    request = await run_request(temporal_client, dag_id, run_id)
                    assert request.run_type is RunType.SCHEDULED
                    interval = request.data_interval
                    produced.append(
                        (request.logical_date, interval and (interval.start, interval.end), request.run_after, run_id)
                    )
                assert produced == runs, dag_id
    finally:
        for dag_id in kinds:
            await end_schedule(temporal_client, dag_id)


async def test_catchup_starts_missed_intervals_in_order_within_max_active_runs(
    temporal_client: Client, worker_settings: Settings, tmp_path: Path
) -> None:
    dag_id = "sched_catchup"
    start = floor_second(now()) - timedelta(minutes=1)
    path = write_dag(
        tmp_path,
        dag_id,
        "datetime.timedelta(seconds=2)",
        start,
        start + timedelta(seconds=8),
        max_active_runs=2,
        body="import time; time.sleep(0.5)",
    )
    runs = oracle(load_dag(path, dag_id))
    run_ids = [run[3] for run in runs]
    assert len(run_ids) == 5
    settings = schedule_settings(worker_settings, tmp_path, "schedules-catchup")
    try:
        async with schedule_worker(settings, temporal_client, [dag_id]):

            async def all_ran() -> bool:
                return all(await asyncio.gather(*(run_closed(temporal_client, dag_id, r) for r in run_ids)))

            await eventually(all_ran, "the 5 missed runs")
        descriptions = [
            await temporal_client.get_workflow_handle(dag_run_workflow_id(dag_id, run_id)).describe()
            for run_id in run_ids
        ]
        starts = [d.start_time for d in descriptions]
        assert starts == sorted(starts), "missed intervals start in order"
        for started in starts:
            in_flight = [d for d in descriptions if d.start_time <= started < d.close_time]
            assert len(in_flight) <= 2, "never more than max_active_runs=2 in flight"
        assert await run_ids_of(temporal_client, dag_id) == sorted(run_ids)
    finally:
        await end_schedule(temporal_client, dag_id)


async def test_future_ticks_pause_unpause_and_paused_upon_creation(
    temporal_client: Client, worker_settings: Settings, tmp_path: Path
) -> None:
    ticking, created_paused = "sched_ticking", "sched_created_paused"
    start = floor_second(now()) - timedelta(hours=1)
    write_dag(tmp_path, ticking, "datetime.timedelta(seconds=2)", start, catchup=False)
    write_dag(tmp_path, created_paused, "datetime.timedelta(seconds=2)", start, catchup=False, paused=True)
    settings = schedule_settings(worker_settings, tmp_path, "schedules-pause")
    test_start = now()
    try:
        async with schedule_worker(settings, temporal_client, [ticking, created_paused]):

            async def started(count: int, dag_id: str = ticking) -> bool:
                try:
                    status = await schedule_status(temporal_client, dag_id)
                except NoSchedule:
                    return False  # the worker's first sync has not reached it yet
                return status.runs_started >= count

            await eventually(lambda: started(3), "three ticks")
            # Catchup off: the hour since start_date is skipped; runs start from now on.
            for run_id in await run_ids_of(temporal_client, ticking):
                request = await run_request(temporal_client, ticking, run_id)
                assert request.run_after is not None and request.run_after > test_start - timedelta(seconds=2)

            assert await set_paused(temporal_client, ticking, True) is False
            paused_at = (await schedule_status(temporal_client, ticking)).runs_started
            await _wait_until(now() + timedelta(seconds=5))  # two ticks' worth
            status = await schedule_status(temporal_client, ticking)
            assert status.paused is True and status.runs_started == paused_at, "paused: no scheduled run started"

            created = await schedule_status(temporal_client, created_paused)
            assert created.paused is True and created.runs_started == 0, "is_paused_upon_creation"

            unpaused_at = now()
            assert await set_paused(temporal_client, ticking, False) is True
            assert await set_paused(temporal_client, created_paused, False) is True
            await eventually(lambda: started(paused_at + 1), "a tick after unpausing")
            await eventually(lambda: started(1, created_paused), "the first run of the DAG created paused")
            for dag_id in (ticking, created_paused):
                latest = (await schedule_status(temporal_client, dag_id)).last_run_id
                assert latest is not None
                request = await run_request(temporal_client, dag_id, latest)
                assert request.run_after is not None and request.run_after > unpaused_at - timedelta(seconds=1), (
                    "catchup off: the paused intervals are skipped"
                )
    finally:
        await end_schedule(temporal_client, ticking)
        await end_schedule(temporal_client, created_paused)


async def _wait_until(moment: datetime) -> None:
    while now() < moment:
        await asyncio.sleep(0.2)


async def test_dag_added_changed_and_removed_without_restart(
    temporal_client: Client, worker_settings: Settings, tmp_path: Path
) -> None:
    dag_id = "sched_changing"
    settings = schedule_settings(worker_settings, tmp_path, "schedules-changes")
    past = floor_second(now()) - timedelta(minutes=1)
    try:
        async with schedule_worker(settings, temporal_client, [dag_id]):
            path = write_dag(tmp_path, dag_id, "datetime.timedelta(seconds=2)", past, past + timedelta(seconds=2))
            first = oracle(load_dag(path, dag_id))
            first_ids = [run[3] for run in first]

            async def ran(run_ids: list[str]) -> bool:
                return all(await asyncio.gather(*(run_closed(temporal_client, dag_id, r) for r in run_ids)))

            await eventually(lambda: ran(first_ids), "the runs of the added DAG")
            # A new schedule: a later window, three-second intervals.
            later = past + timedelta(seconds=30)
            path = write_dag(tmp_path, dag_id, "datetime.timedelta(seconds=3)", later, later + timedelta(seconds=6))
            # The schedule goes on from its last run, as Airflow's scheduler does with a changed DAG.
            after_change = [run[3] for run in oracle(load_dag(path, dag_id), after=first[-1][1])]
            assert after_change and not set(after_change) & set(first_ids)
            await eventually(lambda: ran(after_change), "the runs of the changed schedule")
            # The file stays (an empty one): a DAG run's workflow reads its DAG file while it replays
            # (Airflow's DagCode.write_code inside SerializedDagModel.write_dag), so deleting it
            # would break the replay of the runs above; to the schedule the DAG is gone either way.
            path.write_text("# sched_changing was removed\n")

            async def gone() -> bool:
                status = await schedule_status(temporal_client, dag_id)  # it exists: its runs ran
                return not status.present

            await eventually(gone, "the schedule to notice its DAG is gone")
            handle = temporal_client.get_workflow_handle(schedule_workflow_id(dag_id))
            assert (await handle.describe()).close_time is None, "a removed DAG's schedule waits for it to come back"
    finally:
        await end_schedule(temporal_client, dag_id)


async def test_two_syncs_at_once_make_one_schedule(
    temporal_client: Client, worker_settings: Settings, tmp_path: Path
) -> None:
    from activities.dag_loader import DagLoader
    from activities.schedule_sync import ScheduleSync
    from activities.schedules import SchedulerViews

    dag_id = "sched_two_syncs"
    write_dag(tmp_path, dag_id, "'@daily'", datetime(2025, 1, 1, tzinfo=UTC), paused=True, catchup=False)
    settings = schedule_settings(worker_settings, tmp_path, "schedules-two-syncs")
    syncs = []
    for _ in range(2):
        loader = DagLoader(tmp_path)
        # Parsed here, one after the other: two workers are two processes, while two DagBags in
        # one process importing the same file at once race on its module in sys.modules. What
        # races below is what two workers race on: starting the schedule's workflow.
        loader.all_dags()
        syncs.append(ScheduleSync(temporal_client, loader, SchedulerViews(loader), settings))
    try:
        results = await asyncio.gather(*(sync.sync_once() for sync in syncs))
        assert all(dag_id in result for result in results)
        executions = [e async for e in temporal_client.list_workflows(f"WorkflowId = '{schedule_workflow_id(dag_id)}'")]
        assert len({e.run_id for e in executions}) <= 1
        description = await temporal_client.get_workflow_handle(schedule_workflow_id(dag_id)).describe()
        assert description.run_id is not None
        history = await temporal_client.get_workflow_handle(schedule_workflow_id(dag_id)).fetch_history()
        starts = [e for e in history.events if e.HasField("workflow_execution_started_event_attributes")]
        signals = [e for e in history.events if e.HasField("workflow_execution_signaled_event_attributes")]
        assert len(starts) == 1 and len(signals) == 2, "one workflow, told twice"
    finally:
        await end_schedule(temporal_client, dag_id)
