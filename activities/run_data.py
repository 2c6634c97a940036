"""The DAG run as Airflow's execution API describes it to a task's runner (``TIRunContext.dag_run``)."""

from __future__ import annotations

from airflow.sdk.api.datamodels._generated import DagRun

from activities.asset_inlets import consumed_event_reference
from schemas.runs import DagRunContext


def running_dag_run(run: DagRunContext) -> DagRun:
    """The run, still running, as the API answers a starting try (and the triggerer renders templates with)."""
    return DagRun(
        dag_id=run.dag_id,
        run_id=run.run_id,
        logical_date=run.logical_date,
        data_interval_start=run.data_interval_start,
        data_interval_end=run.data_interval_end,
        run_after=run.run_after,
        start_date=run.start_date,
        end_date=None,
        run_type=run.run_type,
        state="running",
        conf=run.conf,
        consumed_asset_events=[consumed_event_reference(event) for event in run.consumed_asset_events],
        partition_key=None,
    )
