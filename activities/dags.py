"""The activity that reads a DAG from the worker's dags folder for a run that did not bring one."""

from __future__ import annotations

from typing import Any

from airflow.serialization.serialized_objects import DagSerialization
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.dag_loader import DagLoader, DagNotFound
from schemas.errors import FailureType
from schemas.names import LOAD_SERIALIZED_DAG_ACTIVITY


class DagActivities:
    def __init__(self, loader: DagLoader) -> None:
        self._loader = loader

    @activity.defn(name=LOAD_SERIALIZED_DAG_ACTIVITY)
    def load_serialized_dag(self, dag_id: str) -> dict[str, Any]:
        try:
            dag = self._loader.get_dag(dag_id)
        except DagNotFound as err:
            raise ApplicationError(str(err), type=FailureType.DAG_NOT_FOUND, non_retryable=True) from err
        return DagSerialization.to_dict(dag)
