"""The activity that reads a DAG from the worker's dags folder for a run that did not bring one."""

from __future__ import annotations

from typing import Any

from airflow.serialization.serialized_objects import DagSerialization
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.dag_loader import DagLoader, DagNotFound


class DagActivities:
    def __init__(self, loader: DagLoader) -> None:
        self._loader = loader

    @activity.defn(name="load_serialized_dag")
    def load_serialized_dag(self, dag_id: str) -> dict[str, Any]:
        try:
            dag = self._loader.get_dag(dag_id)
        except DagNotFound as err:
            raise ApplicationError(str(err), type="DagNotFound", non_retryable=True) from err
        return DagSerialization.to_dict(dag)
