"""A DAG's runs as Airflow's own code lays them out: the scheduler's and the backfill's computations.

Nothing here re-implements a schedule. The DAG goes through Airflow's serialization first, as it
does on its way to Airflow's scheduler, so the timetable that answers is the scheduler's (a custom
timetable must be registered by a plugin, as in Airflow). Timetables read the wall clock (catchup
off, backfill's "only intervals that ended"): these functions run in activities, never in a workflow.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from airflow.models.dagrun import DagRun
from airflow.sdk.timezone import coerce_datetime
from airflow.serialization.definitions.dag import SerializedDAG
from airflow.serialization.encoders import encode_timetable
from airflow.serialization.serialized_objects import DagSerialization
from airflow.timetables.assets import AssetOrTimeSchedule
from airflow.timetables.base import DagRunInfo
from airflow.timetables.base import DataInterval as AirflowDataInterval
from airflow.timetables.simple import AssetTriggeredTimetable
from airflow.utils.types import DagRunType

from airflow_adapter.schedules import backfill_infos, time_restriction, validate_backfill
from schemas.runs import DataInterval, RunType
from schemas.schedules import ReprocessBehavior, ScheduledRun


def scheduler_view(dag: Any) -> SerializedDAG:
    """The DAG as Airflow's scheduler sees it (raises what Airflow's serialization raises)."""
    return DagSerialization.from_dict(DagSerialization.to_dict(dag))


def scheduling_problem(dag: SerializedDAG) -> str | None:
    """Why this schedule workflow has nothing to start for the DAG, or None when it has."""
    timetable = dag.timetable
    if timetable.partitioned:
        return f"partitioned timetables ({timetable.type_name}) are not scheduled by dagbridge yet"
    if isinstance(timetable, AssetTriggeredTimetable) and not isinstance(timetable, AssetOrTimeSchedule):
        return "the DAG is scheduled on assets, not on time"
    if not timetable.can_be_scheduled:
        return "the DAG has no schedule"
    return None


def schedule_fingerprint(dag: SerializedDAG) -> str:
    """Changes whenever the timetable or anything else that decides which runs the DAG gets changes."""
    restriction = time_restriction(dag)
    decisive = {
        "timetable": encode_timetable(dag.timetable),
        "earliest": restriction.earliest and restriction.earliest.isoformat(),
        "latest": restriction.latest and restriction.latest.isoformat(),
        "catchup": restriction.catchup,
        "max_active_runs": dag.max_active_runs,
    }
    return hashlib.sha256(json.dumps(decisive, sort_keys=True, default=str).encode()).hexdigest()[:16]


def next_scheduled_run(dag: SerializedDAG, last: ScheduledRun | None) -> ScheduledRun | None:
    """The run Airflow's scheduler creates after ``last`` (its last automated run), now.

    ``None`` when the timetable has nothing (more) to schedule, e.g. after ``end_date``.
    """
    last_info = None
    if last is not None:
        last_info = DagRunInfo(run_after=coerce_datetime(last.run_after), data_interval=_airflow_interval(last))
    info = dag.next_dagrun_info(last_automated_run_info=last_info)
    if info is None:
        return None
    run_id = dag.timetable.generate_run_id(
        run_type=DagRunType.SCHEDULED,
        run_after=info.run_after,
        data_interval=info.data_interval,
        partition_key=info.partition_key,
    )
    return _scheduled_run(info, run_id, RunType.SCHEDULED)


def scheduled_run_id(dag: SerializedDAG, run: ScheduledRun) -> str:
    """The ID the scheduler gives (or gave) the scheduled run of the same interval as ``run``."""
    return dag.timetable.generate_run_id(
        run_type=DagRunType.SCHEDULED,
        run_after=coerce_datetime(run.run_after),
        data_interval=_airflow_interval(run),
    )


def backfill_runs(
    dag: SerializedDAG,
    from_date: datetime,
    to_date: datetime,
    *,
    reverse: bool,
    reprocess_behavior: ReprocessBehavior,
) -> list[ScheduledRun]:
    """The runs ``airflow backfill create`` would create, in the order it would create them.

    Raises what Airflow raises for a bad request (``from`` after ``to``, only future dates,
    ``depends_on_past`` tasks run backwards or without reprocessing).
    """
    validate_backfill(
        dag, reverse=reverse, from_date=from_date, to_date=to_date, reprocess_behavior=reprocess_behavior.value
    )
    infos = backfill_infos(dag, from_date=from_date, to_date=to_date, reverse=reverse)
    return [
        _scheduled_run(
            info,
            DagRun.generate_run_id(
                run_type=DagRunType.BACKFILL_JOB, logical_date=info.logical_date, run_after=info.run_after
            ),
            RunType.BACKFILL,
        )
        for info in infos
    ]


def _scheduled_run(info: DagRunInfo, run_id: str, run_type: RunType) -> ScheduledRun:
    interval = info.data_interval
    return ScheduledRun(
        run_id=run_id,
        run_type=run_type,
        logical_date=info.logical_date,
        data_interval=DataInterval(start=interval.start, end=interval.end) if interval else None,
        run_after=info.run_after,
    )


def _airflow_interval(run: ScheduledRun) -> AirflowDataInterval | None:
    interval = run.data_interval
    if interval is None:
        return None
    return AirflowDataInterval(coerce_datetime(interval.start), coerce_datetime(interval.end))
