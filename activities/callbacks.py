"""The activity that runs Airflow callbacks outside a task try: DAG callbacks, and task callbacks
Airflow runs from its DAG processor (a try whose worker was lost).

Its input is Airflow's own callback request, as Airflow's scheduler produces it
(``DagRun.produce_dag_callback``, whose ``msg`` is the reason the callbacks see: "success",
"task_failure", "all_tasks_deadlocked", "timed_out"), so whoever ends a run calls it the same way.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from airflow.callbacks.callback_requests import DagCallbackRequest, TaskCallbackRequest
from airflow.sdk.exceptions import TaskNotFound
from pydantic import Field
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import callback_process, metrics
from activities.dag_loader import DagNotFound
from activities.tasks import TaskProcessPool
from schemas.names import RUN_CALLBACKS_ACTIVITY

CallbackRequest = Annotated[DagCallbackRequest | TaskCallbackRequest, Field(discriminator="type")]


class CallbackActivities:
    def __init__(self, pool: TaskProcessPool, heartbeat_interval_seconds: float = 1.0) -> None:
        self._pool = pool
        self._heartbeat_interval = heartbeat_interval_seconds

    @activity.defn(name=RUN_CALLBACKS_ACTIVITY)
    async def run_callbacks(self, request: CallbackRequest) -> list[str]:
        """Run the request's callbacks; return the kinds that raised (logged and counted, never raised)."""
        dag_id = request.dag_id if isinstance(request, DagCallbackRequest) else request.ti.dag_id
        level = "dag" if isinstance(request, DagCallbackRequest) else "task"
        attempt = asyncio.ensure_future(self._pool.call(callback_process.run_callbacks, request))
        while True:
            done, _ = await asyncio.wait({attempt}, timeout=self._heartbeat_interval)
            if done:
                break
            activity.heartbeat()
        try:
            failed = attempt.result()
        except (DagNotFound, TaskNotFound) as err:
            # The worker's dags folder no longer has what the callbacks belong to: another
            # attempt here cannot find it either.
            raise ApplicationError(str(err), type=type(err).__name__, non_retryable=True) from err
        metrics.record_callback_failures(dag_id, level, failed)
        return failed
