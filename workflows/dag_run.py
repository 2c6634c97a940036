"""The DAG-run workflow: Airflow decides what is ready, Temporal runs it durably."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from airflow.configuration import conf as airflow_conf

    from activities.dags import DagActivities
    from activities.events import EventActivities
    from activities.limits import LimitActivities
    from activities.tasks import TaskActivities
    from schemas.limits import SLOTS_GRANTED_SIGNAL, SlotChanges, SlotClaim, SlotGrant, SlotRelease
    from schemas.messages import RunEvent, TaskEvent
    from schemas.runs import (
        DagRunRequest,
        DagRunResult,
        RunOptions,
        RunTaskInstance,
        TaskError,
        TaskState,
        TaskTryRequest,
        TaskTryResult,
        XComEntry,
    )
    from workflows.airflow_db import private_airflow_session
    from workflows.airflow_run import AirflowDagRun, ReadyTask
    from workflows.client import DAG_RUN_WORKFLOW
    from workflows.slots import RunSlots

AIRFLOW_DEFAULT_QUEUE = airflow_conf.get("operators", "default_queue")
DEFAULT_MAX_ACTIVE_RUNS = airflow_conf.getint("core", "max_active_runs_per_dag")

# Task failures come back as results and follow Airflow's own retry rules; Temporal only
# retries what never produced a result (a worker that died, a lost connection).
ACTIVITY_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=10,
    non_retryable_error_types=["DagNotFound", "TaskNotFound"],
)

# An event must not be lost: publishing is retried for as long as Kafka stays away.
EVENT_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=0,
)
EVENT_PUBLISH_TIMEOUT = timedelta(seconds=30)

# Slots are given back even while the Temporal frontend is away: a lost release leaks a slot.
SLOT_CHANGES_RETRY_POLICY = RetryPolicy(maximum_interval=timedelta(seconds=10), maximum_attempts=0)


@workflow.defn(name=DAG_RUN_WORKFLOW, sandboxed=False)
class DagRunWorkflow:
    """Runs one Airflow DAG run to completion.

    Unsandboxed: Airflow and SQLAlchemy cannot be re-imported into the sandbox per run at any
    reasonable cost. Determinism is instead guaranteed by construction (private database,
    workflow clock, ordered decisions) and checked by replaying every history the tests produce.
    """

    def __init__(self) -> None:
        self._finished_tries: list[TaskTryResult] = []
        self._running: int = 0
        self._xcoms: dict[tuple[str, int], list[XComEntry]] = {}
        self._slots = RunSlots(workflow.info().workflow_id)

    @workflow.signal(name=SLOTS_GRANTED_SIGNAL)
    def slots_granted(self, grant: SlotGrant) -> None:
        self._slots.on_grant(grant)

    @workflow.run
    async def run(self, request: DagRunRequest) -> DagRunResult:
        """Run the DAG run, then publish its run event, also when it could not run at all."""
        info = workflow.info()
        try:
            result = await self._run(request)
        except FailureError as err:
            cause = err.cause if isinstance(err, ActivityError) and err.cause is not None else err
            await self._publish_run_event(
                RunEvent(
                    event_id=f"{info.workflow_id}:finished",
                    dag_id=request.dag_id,
                    run_id=request.run_id,
                    state="failed",
                    logical_date=request.logical_date,
                    start_date=info.start_time,
                    end_date=workflow.now(),
                    error=cause.message,
                )
            )
            raise
        await self._publish_run_event(RunEvent.of_result(info.workflow_id, result, request.logical_date))
        return result

    async def _publish_run_event(self, event: RunEvent) -> None:
        await workflow.execute_activity_method(
            EventActivities.publish_run_event,
            event,
            start_to_close_timeout=EVENT_PUBLISH_TIMEOUT,
            retry_policy=EVENT_RETRY_POLICY,
        )

    async def _run(self, request: DagRunRequest) -> DagRunResult:
        serialized_dag = request.serialized_dag or await self._load_dag(request.dag_id)
        try:
            await self._wait_for_run_slot(request.dag_id, serialized_dag)
            return await self._run_in_private_db(request, serialized_dag)
        finally:
            # However the run ends, cancelled included; a terminated run runs no code, its
            # slots are reclaimed by the limits themselves.
            await self._exchange_slots(self._slots.everything(), [])

    async def _wait_for_run_slot(self, dag_id: str, serialized_dag: dict) -> None:
        """Runs beyond the DAG's max_active_runs wait here, Airflow's queued runs."""
        max_active_runs = serialized_dag["dag"].get("max_active_runs", DEFAULT_MAX_ACTIVE_RUNS)
        self._slots.claim_run_slot(dag_id, max_active_runs)
        await self._exchange_slots(*self._slots.changes())
        await workflow.wait_condition(lambda: self._slots.run_slot_held)

    async def _exchange_slots(self, release: list[SlotRelease], acquire: list[SlotClaim]) -> None:
        if not release and not acquire:
            return
        answers = await workflow.execute_local_activity_method(
            LimitActivities.change_slots,
            SlotChanges(requester=workflow.info().workflow_id, release=release, acquire=acquire),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=SLOT_CHANGES_RETRY_POLICY,
        )
        self._slots.on_refusals(answers.refusals)
        for grant in answers.grants:
            self._slots.on_grant(grant)

    async def _run_in_private_db(self, request: DagRunRequest, serialized_dag: dict) -> DagRunResult:
        with private_airflow_session() as session:
            try:
                dag_run = AirflowDagRun.create(
                    session,
                    serialized_dag=serialized_dag,
                    run_id=request.run_id,
                    logical_date=request.logical_date,
                    conf=request.conf,
                    now=workflow.now(),
                )
            except ValueError as err:
                raise ApplicationError(
                    f"DAG run {request.dag_id}/{request.run_id} cannot start: {err}",
                    type="InvalidDagRun",
                    non_retryable=True,
                ) from err
            error = await self._drive(dag_run, request)
            return self._result(dag_run, error)

    async def _load_dag(self, dag_id: str) -> dict:
        try:
            # Local: the worker that runs this workflow has the dags folder, so the DAG is read
            # without a round trip through the server, and the result is still in history.
            return await workflow.execute_local_activity_method(
                DagActivities.load_serialized_dag,
                dag_id,
                start_to_close_timeout=timedelta(minutes=2),
                retry_policy=ACTIVITY_RETRY_POLICY,
            )
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type == "DagNotFound":
                raise ApplicationError(cause.message, type="DagNotFound", non_retryable=True) from err
            raise

    async def _drive(self, dag_run: AirflowDagRun, request: DagRunRequest) -> str | None:
        """Alternate between Airflow's decisions and the outcomes of the tries it asked for."""
        while True:
            self._slots.admit(dag_run.schedule(), dag_run.dag)
            await self._exchange_slots(*self._slots.changes())
            self._slots.has_news = False
            ready = self._slots.startable()
            for task, _ in ready:
                dag_run.start(task)
            # One snapshot for everything handed out together: the run as Airflow's database
            # had it when these tries started (what their count and state queries see).
            run_task_instances = dag_run.task_instances() if ready else []
            for task, refusal in ready:
                self._start_try(dag_run, task, request, run_task_instances, refusal)
            if dag_run.finished:
                return None
            if not self._finished_tries and not self._slots.has_news:
                wakeup = dag_run.next_wakeup()
                if self._running == 0 and wakeup is None and not self._slots.waiting:
                    dag_run.fail(workflow.now())
                    return "no task is running or waiting, yet the run is not finished"
                await self._wait_for_outcome_until(wakeup)
            while self._finished_tries:
                result = self._finished_tries.pop(0)
                dag_run.record(result)
                self._slots.finish(result.task_id, result.map_index)

    async def _wait_for_outcome_until(self, wakeup: datetime | None) -> None:
        timeout = None
        if wakeup is not None:
            timeout = max((wakeup - workflow.now()).total_seconds(), 0.001)
        try:
            await workflow.wait_condition(lambda: bool(self._finished_tries) or self._slots.has_news, timeout=timeout)
        except asyncio.TimeoutError:
            pass

    def _start_try(
        self,
        dag_run: AirflowDagRun,
        task: ReadyTask,
        request: DagRunRequest,
        run_task_instances: list[RunTaskInstance],
        refusal: str | None,
    ) -> None:
        upstream = dag_run.upstream_task_ids(task.task_id)
        try_request = TaskTryRequest(
            dag_run=dag_run.context(),
            task_id=task.task_id,
            map_index=task.map_index,
            try_number=task.try_number,
            max_tries=task.max_tries,
            upstream_xcoms=[
                entry
                for (task_id, _), entries in sorted(self._xcoms.items())
                if task_id in upstream
                for entry in entries
            ],
            # Like XComs, a task sees the task instances of its own task and of its upstream tasks.
            run_task_instances=[
                ti for ti in run_task_instances if ti.task_id == task.task_id or ti.task_id in upstream
            ],
        )
        queue = request.options.default_task_queue if task.queue == AIRFLOW_DEFAULT_QUEUE else task.queue
        self._running += 1
        asyncio.create_task(self._run_try(try_request, queue, request, refusal))

    async def _run_try(
        self, try_request: TaskTryRequest, queue: str, request: DagRunRequest, refusal: str | None
    ) -> None:
        options = request.options
        started = workflow.now()
        if refusal is not None:
            # Retrying cannot help: the pool is missing or too small on this deployment.
            error = TaskError(type="PoolUnavailable", message=refusal)
            result = await self._try_without_result(try_request, started, error, retry=False)
        else:
            result = await self._run_activity(try_request, queue, options, started)
        self._xcoms[(result.task_id, result.map_index)] = list(result.xcoms)
        self._running -= 1
        self._finished_tries.append(result)

    async def _run_activity(
        self, try_request: TaskTryRequest, queue: str, options: RunOptions, started: datetime
    ) -> TaskTryResult:
        try:
            return await workflow.execute_activity_method(
                TaskActivities.run_task_try,
                try_request,
                activity_id=f"{try_request.task_id}:{try_request.map_index}:{try_request.try_number}",
                task_queue=queue,
                start_to_close_timeout=timedelta(seconds=options.task_start_to_close_timeout_seconds),
                heartbeat_timeout=timedelta(seconds=options.task_heartbeat_timeout_seconds),
                retry_policy=ACTIVITY_RETRY_POLICY,
            )
        except ActivityError as err:
            cause = err.cause or err
            error = TaskError(type=type(cause).__name__, message=str(cause))
            retry = try_request.try_number <= try_request.max_tries
            return await self._try_without_result(try_request, started, error, retry=retry)

    async def _try_without_result(
        self, try_request: TaskTryRequest, started: datetime, error: TaskError, *, retry: bool
    ) -> TaskTryResult:
        result = TaskTryResult(
            task_id=try_request.task_id,
            map_index=try_request.map_index,
            try_number=try_request.try_number,
            state=TaskState.UP_FOR_RETRY if retry else TaskState.FAILED,
            start_date=started,
            end_date=workflow.now(),
            error=error,
        )
        # No activity returned a result, so none published this try's event.
        await workflow.execute_activity_method(
            EventActivities.publish_task_event,
            TaskEvent.of_try(workflow.info().workflow_id, try_request, result),
            start_to_close_timeout=EVENT_PUBLISH_TIMEOUT,
            retry_policy=EVENT_RETRY_POLICY,
        )
        return result

    def _result(self, dag_run: AirflowDagRun, error: str | None) -> DagRunResult:
        result = dag_run.result(error)
        return result.model_copy(
            update={
                "task_instances": [
                    ti.model_copy(
                        update={
                            "xcom": {
                                entry.key: entry.value for entry in self._xcoms.get((ti.task_id, ti.map_index), [])
                            }
                        }
                    )
                    for ti in result.task_instances
                ]
            }
        )
