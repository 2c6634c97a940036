"""TriggerDagRunOperator's requests, served from a task's pool process by Temporal itself.

Airflow's API server creates the triggered run in its database; here the run is a DagRun workflow
started exactly as a Kafka trigger starts one (``start_dag_run``: ID ``dagrun:<dag_id>:<run_id>``,
never reused), and its state is read back from that workflow. The pool process runs no event
loop, so it keeps one of its own, with one Temporal client, for these calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from airflow.sdk import DagRunState
from airflow.sdk.exceptions import AirflowRuntimeError, ErrorType
from airflow.sdk.execution_time import comms
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.dag_loader import DagLoader, DagNotFound
from activities.supervisor_comms import UnsupportedTaskRequest
from infra.temporal import connect, run_options, start_dag_run
from schemas.ids import dag_run_workflow_id
from schemas.runs import DagRunRequest, DagRunResult
from schemas.settings import Settings

T = TypeVar("T")

# The memo key naming the task try that started a run: a try repeated by Temporal (its worker
# died after the start) finds its own run, which is not an "already exists" for it.
TRIGGERED_BY = "triggered_by"


def _api_error(status_code: int, message: str) -> AirflowRuntimeError:
    # What the task would see from Airflow's API server: the task fails (or retries) with it.
    return AirflowRuntimeError(
        comms.ErrorResponse(error=ErrorType.API_SERVER_ERROR, detail={"status_code": status_code, "message": message})
    )


class DagRunTriggers:
    def __init__(self, settings: Settings, loader: DagLoader) -> None:
        self._settings = settings
        self._loader = loader
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Client | None = None

    def _call(self, operation: Callable[[Client], Awaitable[T]]) -> T:
        async def with_client() -> T:
            if self._client is None:
                self._client = await connect(self._settings)
            return await operation(self._client)

        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(with_client())

    def trigger(self, msg: comms.TriggerDagRun, triggered_by: str) -> comms.OKResponse | comms.ErrorResponse:
        """Start the run, or report that (dag_id, run_id) already ran, as Airflow's API does."""
        if msg.run_after is not None:
            raise UnsupportedTaskRequest("run_after: a triggered run starts at once; set logical_date instead")
        try:
            self._loader.get_dag(msg.dag_id)
        except DagNotFound as err:
            raise _api_error(404, str(err)) from err
        request = DagRunRequest(
            dag_id=msg.dag_id,
            run_id=msg.run_id,
            logical_date=msg.logical_date,
            conf=msg.conf or {},
            options=run_options(self._settings),
        )

        async def start(client: Client) -> bool:
            try:
                await start_dag_run(
                    client,
                    request,
                    self._settings.task_queue,
                    memo={TRIGGERED_BY: triggered_by},
                    trigger_source="operator",
                )
            except WorkflowAlreadyStartedError:
                description = await client.get_workflow_handle(dag_run_workflow_id(msg.dag_id, msg.run_id)).describe()
                return await description.memo_value(TRIGGERED_BY, default=None) == triggered_by
            return True

        if self._call(start):
            return comms.OKResponse(ok=True)
        if msg.reset_dag_run:
            raise UnsupportedTaskRequest(
                f"reset_dag_run: DAG run {msg.dag_id}/{msg.run_id} already ran, and a run's workflow ID is never reused"
            )
        return comms.ErrorResponse(error=ErrorType.DAGRUN_ALREADY_EXISTS)

    def state(self, msg: comms.GetDagRunState) -> comms.DagRunStateResult:
        """The run's Airflow state: running until its workflow closes, then how the run ended."""
        return comms.DagRunStateResult(state=self._call(lambda client: dag_run_state(client, msg.dag_id, msg.run_id)))


async def dag_run_state(client: Client, dag_id: str, run_id: str) -> DagRunState:
    """The state of the run ``dag_id``/``run_id``, from its workflow.

    Raises ``AirflowRuntimeError`` (Airflow's 404) when no such run was ever started.
    """
    handle = client.get_workflow_handle(dag_run_workflow_id(dag_id, run_id), result_type=DagRunResult)
    try:
        status = (await handle.describe()).status
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise _api_error(404, f"DAG run {dag_id}/{run_id} not found") from err
        raise
    if status == WorkflowExecutionStatus.RUNNING:
        return DagRunState.RUNNING
    if status == WorkflowExecutionStatus.COMPLETED:
        return DagRunState((await handle.result()).state)
    # Failed before it could run (unknown DAG, bad conf), terminated, cancelled, timed out.
    return DagRunState.FAILED
