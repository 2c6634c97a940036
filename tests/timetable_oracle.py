"""Airflow's own answer to a DAG's schedule: its timetable iterated the way the scheduler does."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG
from airflow.timetables.base import DataInterval as AirflowDataInterval
from airflow.timetables.base import TimeRestriction
from airflow.utils.types import DagRunType

from activities.timetables import scheduler_view


def oracle(dag: DAG, after: tuple[datetime, datetime] | None = None) -> list[tuple[Any, ...]]:
    """The timetable iterated the way the scheduler does, called directly; from the interval ``after``."""
    timetable = scheduler_view(dag).timetable
    restriction = TimeRestriction(dag.start_date, dag.end_date, catchup=True)
    runs: list[tuple[Any, ...]] = []
    last = AirflowDataInterval(*after) if after else None
    while info := timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction):
        run_id = timetable.generate_run_id(
            run_type=DagRunType.SCHEDULED, run_after=info.run_after, data_interval=info.data_interval
        )
        interval = info.data_interval
        runs.append((info.logical_date, interval and (interval.start, interval.end), info.run_after, run_id))
        last = interval
        assert len(runs) < 1000, "the window never ends"
    return runs
