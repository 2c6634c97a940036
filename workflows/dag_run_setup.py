"""A run's private database made ready: the DAG registered as Airflow's DAG processor would, the run created."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.models.dag import DagModel
from airflow.models.dagbundle import DagBundleModel
from airflow.models.dagrun import DagRun
from airflow.models.serialized_dag import SerializedDagModel
from airflow.serialization.serialized_objects import DagSerialization, LazyDeserializedDAG
from airflow.timetables.base import DataInterval as AirflowDataInterval
from airflow.utils.state import DagRunState
from airflow.utils.types import DagRunTriggeredByType, DagRunType
from sqlalchemy import select
from sqlalchemy.orm import Session

from schemas.runs import DataInterval, RunType

BUNDLE_NAME = "dagbridge"
# Who Airflow records as the run's creator, by what started it.
TRIGGERED_BY = {
    RunType.MANUAL: DagRunTriggeredByType.REST_API,
    RunType.SCHEDULED: DagRunTriggeredByType.TIMETABLE,
    RunType.BACKFILL: DagRunTriggeredByType.BACKFILL,
    RunType.ASSET_TRIGGERED: DagRunTriggeredByType.ASSET,
    RunType.OPERATOR_TRIGGERED: DagRunTriggeredByType.OPERATOR,
}


def create_airflow_dag_run(
    session: Session,
    *,
    serialized_dag: dict[str, Any],
    run_id: str,
    logical_date: datetime | None,
    conf: dict[str, Any],
    now: datetime,
    run_type: RunType,
    data_interval: DataInterval | None,
    run_after: datetime | None,
) -> tuple[Any, DagRun]:
    """Register the DAG version and create the run with its task instances; the DAG and the run.

    Raises ``ValueError`` (Airflow's own) when the run_id is not acceptable or the conf fails
    the DAG's ``Param`` validation.
    """
    dag_id = serialized_dag["dag"]["dag_id"]
    session.add(DagBundleModel(name=BUNDLE_NAME))
    # Airflow's callback requests name the DAG's file, where its DAG processor runs them.
    fileloc = serialized_dag["dag"].get("relative_fileloc") or ""
    session.add(DagModel(dag_id=dag_id, bundle_name=BUNDLE_NAME, relative_fileloc=fileloc))  # type: ignore[no-untyped-call]  # Airflow leaves it unannotated
    session.flush()
    SerializedDagModel.write_dag(LazyDeserializedDAG(data=serialized_dag), bundle_name=BUNDLE_NAME, session=session)
    dag = DagSerialization.from_dict(serialized_dag)
    # Airflow annotates pendulum's DateTime; a datetime does what the timetable asks of it.
    interval: AirflowDataInterval | None
    if data_interval is not None:
        interval = AirflowDataInterval(data_interval.start, data_interval.end)  # type: ignore[arg-type]
    elif logical_date:
        interval = dag.timetable.infer_manual_data_interval(run_after=logical_date)  # type: ignore[arg-type]
    else:
        interval = None
    dag_run = dag.create_dagrun(
        run_id=run_id,
        logical_date=logical_date,
        data_interval=interval,
        run_after=run_after or logical_date or now,
        conf=conf,
        run_type=DagRunType(run_type.value),
        triggered_by=TRIGGERED_BY[run_type],
        state=DagRunState.RUNNING,
        start_date=now,
        session=session,
    )
    session.flush()
    return dag, dag_run


def find_airflow_dag_run(session: Session, *, serialized_dag: dict[str, Any], run_id: str) -> tuple[Any, DagRun]:
    """The DAG and the run in a database an earlier workflow of the same run created."""
    dag = DagSerialization.from_dict(serialized_dag)
    dag_run = session.scalars(select(DagRun).where(DagRun.dag_id == dag.dag_id, DagRun.run_id == run_id)).one()
    return dag, dag_run
