"""Conformance of scheduled and backfill runs with Airflow's own timetable code, without Temporal.

For every kind of schedule Airflow 3.3 ships, and a custom timetable from a plugin, the runs
dagbridge lays out (logical date, data interval, run_after, run ID) over a window are the ones
the scheduler's timetable yields when iterated with its ``next_dagrun_info`` (the oracle calls the
timetable directly, with the DAG's start/end dates and catchup as the restriction). Windows lie in
the past and end at ``end_date``, so the sequences are finite and do not depend on the clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pendulum
import pytest
from airflow.sdk import (
    DAG,
    CronDataIntervalTimetable,
    CronTriggerTimetable,
    DeltaDataIntervalTimetable,
    DeltaTriggerTimetable,
    MultipleCronTriggerTimetable,
)
from airflow.timetables.events import EventsTimetable
from alternating_timetable import AlternatingTimetable

from activities.timetables import (
    backfill_runs,
    next_scheduled_run,
    schedule_fingerprint,
    scheduler_view,
    scheduling_problem,
)
from schemas.runs import RunType
from schemas.schedules import ReprocessBehavior, ScheduledRun
from tests.timetable_oracle import oracle

START = datetime(2025, 3, 28, tzinfo=UTC)
END = datetime(2025, 4, 2, tzinfo=UTC)

# A DST change falls in every window with a timezone (Europe: 2025-03-30, US: 2025-03-09).
SCHEDULES: dict[str, tuple[Any, datetime, datetime]] = {
    "cron_string": ("0 */12 * * *", START, END),
    "preset_daily": ("@daily", START, END),
    "preset_hourly": ("@hourly", datetime(2025, 3, 30, tzinfo=UTC), datetime(2025, 3, 30, 6, tzinfo=UTC)),
    "timedelta": (timedelta(hours=7), START, END),
    "cron_trigger_dst": (CronTriggerTimetable("30 2 * * *", timezone="Europe/Paris"), START, END),
    "cron_trigger_interval": (
        CronTriggerTimetable("0 6 * * *", timezone="Europe/Paris", interval=timedelta(hours=6)),
        START,
        END,
    ),
    "cron_data_interval_dst": (
        CronDataIntervalTimetable("0 0 * * *", timezone="America/New_York"),
        datetime(2025, 3, 6, tzinfo=UTC),
        datetime(2025, 3, 12, tzinfo=UTC),
    ),
    "delta_data_interval": (DeltaDataIntervalTimetable(timedelta(hours=10)), START, END),
    "delta_trigger": (DeltaTriggerTimetable(timedelta(hours=10), interval=timedelta(hours=2)), START, END),
    "multiple_cron": (
        MultipleCronTriggerTimetable("0 3 * * *", "30 15 * * 1-5", timezone="Europe/Paris"),
        START,
        END,
    ),
    # Airflow 3.3.2's SDK EventsTimetable cannot be serialized (its encoder leaves out the "_summary"
    # the decoder reads), so Airflow's scheduler could not take it either: the core class is used.
    "events": (
        EventsTimetable(
            [pendulum.datetime(2025, 3, 29, 9), pendulum.datetime(2025, 3, 28, 17), pendulum.datetime(2025, 4, 1)]
        ),
        START,
        END,
    ),
    "custom_plugin": (AlternatingTimetable(short=3600, long=7200), START, datetime(2025, 3, 28, 12, tzinfo=UTC)),
}


def make_dag(name: str, schedule: Any, start: datetime, end: datetime, **kwargs: Any) -> DAG:
    with DAG(f"conformance_{name}", schedule=schedule, start_date=start, end_date=end, catchup=True, **kwargs) as dag:
        pass
    return dag


def laid_out(dag: DAG) -> list[ScheduledRun]:
    view = scheduler_view(dag)
    runs: list[ScheduledRun] = []
    while run := next_scheduled_run(view, runs[-1] if runs else None):
        runs.append(run)
        assert len(runs) < 1000, "the window never ends"
    return runs


def as_tuples(runs: list[ScheduledRun]) -> list[tuple[Any, ...]]:
    return [
        (
            run.logical_date,
            run.data_interval and (run.data_interval.start, run.data_interval.end),
            run.run_after,
            run.run_id,
        )
        for run in runs
    ]


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_scheduled_runs_are_the_timetables(name: str) -> None:
    dag = make_dag(name, *SCHEDULES[name])
    expected = oracle(dag)
    runs = laid_out(dag)
    assert len(expected) >= 3, "the window must hold a few runs to compare"
    assert as_tuples(runs) == expected
    assert {run.run_type for run in runs} == {RunType.SCHEDULED}
    assert all(run.run_id.startswith("scheduled__") for run in runs)


def test_dst_is_the_timetables() -> None:
    """2:30 in Paris does not exist on 2025-03-30: the timetable's answer, whatever it is, is kept."""
    runs = laid_out(make_dag("dst", *SCHEDULES["cron_trigger_dst"]))
    utc_hours = [(run.run_after.month, run.run_after.day, run.run_after.astimezone(UTC).hour) for run in runs]
    assert (3, 29, 1) in utc_hours and (3, 31, 0) in utc_hours, "winter 01:30 UTC, summer 00:30 UTC"


def test_no_schedule_and_asset_schedules_are_not_scheduled_here() -> None:
    from airflow.sdk import Asset

    assert scheduling_problem(scheduler_view(make_dag("none", None, START, END))) == "the DAG has no schedule"
    assert "assets" in str(scheduling_problem(scheduler_view(make_dag("assets", [Asset("s3://b/k")], START, END))))
    assert scheduling_problem(scheduler_view(make_dag("daily", "@daily", START, END))) is None


def test_fingerprint_changes_with_what_decides_the_runs() -> None:
    base = schedule_fingerprint(scheduler_view(make_dag("f", "@daily", START, END)))
    assert base == schedule_fingerprint(scheduler_view(make_dag("f", "@daily", START, END)))
    assert base != schedule_fingerprint(scheduler_view(make_dag("f", "@hourly", START, END)))
    assert base != schedule_fingerprint(scheduler_view(make_dag("f", "@daily", START, END + timedelta(days=1))))
    assert base != schedule_fingerprint(scheduler_view(make_dag("f", "@daily", START, END, max_active_runs=3)))


def test_backfill_runs_are_airflows() -> None:
    dag = make_dag("backfill", "@daily", datetime(2025, 1, 1, tzinfo=UTC), None)
    runs = backfill_runs(
        scheduler_view(dag),
        datetime(2025, 1, 1, tzinfo=UTC),
        datetime(2025, 1, 5, tzinfo=UTC),
        reverse=False,
        reprocess_behavior=ReprocessBehavior.NONE,
    )
    assert [run.run_id for run in runs] == [f"backfill__2025-01-0{day}T00:00:00+00:00" for day in range(1, 6)]
    assert {run.run_type for run in runs} == {RunType.BACKFILL}
    backwards = backfill_runs(
        scheduler_view(dag),
        datetime(2025, 1, 1, tzinfo=UTC),
        datetime(2025, 1, 5, tzinfo=UTC),
        reverse=True,
        reprocess_behavior=ReprocessBehavior.NONE,
    )
    assert backwards == runs[::-1]


def test_backfill_refuses_what_airflow_refuses() -> None:
    from airflow.exceptions import AirflowException

    view = scheduler_view(make_dag("bad_backfill", "@daily", datetime(2025, 1, 1, tzinfo=UTC), None))
    with pytest.raises((AirflowException, ValueError), match="must not be after"):
        backfill_runs(
            view,
            datetime(2025, 1, 5, tzinfo=UTC),
            datetime(2025, 1, 1, tzinfo=UTC),
            reverse=False,
            reprocess_behavior=ReprocessBehavior.NONE,
        )
