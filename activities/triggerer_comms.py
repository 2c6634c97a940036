"""What a trigger asks Airflow's triggerer about other DAG runs, answered from their workflows.

Airflow's ``DagStateTrigger`` (TriggerDagRunOperator with ``deferrable=True``, and
ExternalTaskSensor's deferrable mode) polls the triggerer's supervisor for the count and state of
DAG runs. Here a DAG run is a workflow: the answers come from Temporal, through the worker's own
client. Triggers call these synchronously from a thread (``sync_to_async``), so each call is handed
to the worker's event loop and waited for.
"""

from __future__ import annotations

import asyncio
from typing import Any

from airflow.sdk import DagRunState
from airflow.sdk.exceptions import AirflowRuntimeError
from airflow.sdk.execution_time import comms, task_runner
from temporalio.client import Client

from activities.dag_run_triggers import dag_run_state
from activities.supervisor_comms import UnsupportedTaskRequest


class TriggererComms:
    def __init__(self, client: Client, loop: asyncio.AbstractEventLoop) -> None:
        self._client = client
        self._loop = loop

    def send(self, msg: Any) -> Any:
        """Answer ``GetDagRunState`` and ``GetDRCount`` (by run IDs); raise UnsupportedTaskRequest otherwise."""
        if isinstance(msg, comms.GetDagRunState):
            return comms.DagRunStateResult(state=self._wait(dag_run_state(self._client, msg.dag_id, msg.run_id)))
        if isinstance(msg, comms.GetDRCount) and msg.run_ids is not None and msg.logical_dates is None:
            return comms.DRCount(count=self._wait(self._count(msg.dag_id, msg.run_ids, msg.states)))
        raise UnsupportedTaskRequest(f"dagbridge's triggerer does not serve {type(msg).__name__} requests")

    async def asend(self, msg: Any) -> Any:
        return await asyncio.to_thread(self.send, msg)

    def _wait(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    async def _count(self, dag_id: str, run_ids: list[str], states: list[str] | None) -> int:
        """How many of the runs exist (and are in one of ``states``, when given), as Airflow's API counts."""
        count = 0
        for run_id in run_ids:
            try:
                state = await dag_run_state(self._client, dag_id, run_id)
            except AirflowRuntimeError:
                continue
            count += states is None or DagRunState(state).value in states
        return count


def install(client: Client) -> None:
    """Serve the triggers of this process (the worker's, not its task processes') from Temporal."""
    task_runner.SUPERVISOR_COMMS = TriggererComms(client, asyncio.get_running_loop())
