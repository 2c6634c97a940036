"""Airflow's scheduler and backfill internals the schedules use: private names, behind one small function each.

dagbridge lays out backfills and fingerprints schedules with Airflow's own code, some of which
Airflow keeps private (``airflow backfill create``'s validation and interval list, a DAG's time
restriction). Every such name is here and in ``contract.EXPECTATIONS``, so an Airflow that moved
or changed one fails ``airflow_adapter.check()`` at worker start instead of a backfill later.
"""

from __future__ import annotations

from datetime import datetime

from airflow.models import backfill
from airflow.models.backfill import ReprocessBehavior
from airflow.serialization.definitions.dag import SerializedDAG
from airflow.timetables.base import DagRunInfo, TimeRestriction

VALIDATE_BACKFILL_PARAMS = "airflow.models.backfill._validate_backfill_params"
BACKFILL_INFO_LIST = "airflow.models.backfill._get_info_list"
TIME_RESTRICTION = "airflow.serialization.definitions.dag.SerializedDAG._time_restriction"


def validate_backfill(
    dag: SerializedDAG, *, reverse: bool, from_date: datetime, to_date: datetime, reprocess_behavior: str
) -> None:
    """Airflow's checks of a backfill request; raises what Airflow raises for a bad one.

    ``from`` after ``to``, only future dates, ``depends_on_past`` tasks run backwards or without
    reprocessing: Airflow's ``InvalidBackfill*`` / ``InvalidReprocessBehavior`` exceptions.
    """
    backfill._validate_backfill_params(dag, reverse, from_date, to_date, ReprocessBehavior(reprocess_behavior))


def backfill_infos(dag: SerializedDAG, *, from_date: datetime, to_date: datetime, reverse: bool) -> list[DagRunInfo]:
    """The intervals ``airflow backfill create`` creates runs for, in the order it creates them."""
    infos: list[DagRunInfo] = backfill._get_info_list(from_date=from_date, to_date=to_date, reverse=reverse, dag=dag)
    return infos


def time_restriction(dag: SerializedDAG) -> TimeRestriction:
    """The DAG's earliest and latest dates and catchup, as its timetable receives them."""
    restriction: TimeRestriction = dag._time_restriction
    return restriction
