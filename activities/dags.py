"""The activity that reads a DAG from the worker's dags folder for a run that did not bring one."""

from __future__ import annotations

import threading
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
        # Each DAG serialized once per parse of its file: every run of a scheduled DAG asks for it,
        # and the loader hands out the same DAG object until the file changes.
        self._serialized: dict[str, tuple[Any, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    @activity.defn(name=LOAD_SERIALIZED_DAG_ACTIVITY)
    def load_serialized_dag(self, dag_id: str) -> dict[str, Any]:
        """The DAG as Airflow serializes it; raises a non-retryable ``DagNotFound`` when the folder lacks it."""
        try:
            dag = self._loader.get_dag(dag_id)
        except DagNotFound as err:
            raise ApplicationError(str(err), type=FailureType.DAG_NOT_FOUND, non_retryable=True) from err
        with self._lock:
            cached = self._serialized.get(dag_id)
        if cached is not None and cached[0] is dag:
            return cached[1]
        serialized = DagSerialization.to_dict(dag)
        with self._lock:
            self._serialized[dag_id] = (dag, serialized)
        return serialized
