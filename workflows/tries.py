"""The tries a run has handed out: each one an activity, its outcome a result the run records.

A task failure comes back as a result. What never produced one (the worker died for good, the
pool is missing) is turned into a failed or retryable result here, with the task event and the
callback its runner could not send.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ActivityError
from temporalio.workflow import ActivityHandle

with workflow.unsafe.imports_passed_through():
    from schemas.errors import FailureType
    from schemas.messages import TaskEvent
    from schemas.runs import RunOptions, TaskError, TaskState, TaskTryRequest, TaskTryResult
    from workflows.activity_calls import publish_task_event, run_callbacks, start_task_try
    from workflows.airflow_run import AirflowDagRun
    from workflows.stopping import cancel_activities
    from workflows.xcom_store import XComStore


class RunningTries:
    """Tries in flight and tries finished but not yet recorded by the run."""

    def __init__(self, dag_run: AirflowDagRun, xcoms: XComStore, options: RunOptions) -> None:
        self._dag_run = dag_run
        self._xcoms = xcoms
        self._options = options
        self.running = 0
        self.finished: list[TaskTryResult] = []
        self._activities: set[ActivityHandle[TaskTryResult]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False

    def start(self, try_request: TaskTryRequest, queue: str, refusal: str | None) -> None:
        """Hand the try to an activity on ``queue``; ``refusal``: why its slots can never be had."""
        self.running += 1
        task = asyncio.create_task(self._run(try_request, queue, refusal))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def end_from_trigger(self, result: TaskTryResult) -> None:
        """A trigger ended its task itself (``end_from_trigger``): no activity ran the end, so this publishes it."""
        self.running += 1
        task = asyncio.create_task(self._ended_from_trigger(result))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _ended_from_trigger(self, result: TaskTryResult) -> None:
        dag_run = self._dag_run.context()
        await publish_task_event(
            TaskEvent.of_result(workflow.info().workflow_id, dag_run.dag_id, dag_run.run_id, result)
        )
        self._xcoms.store(result)
        self.running -= 1
        self.finished.append(result)

    def take_finished(self) -> TaskTryResult | None:
        return self.finished.pop(0) if self.finished else None

    def cancel_all(self) -> None:
        """Ask every running try to stop; those that end without a result are not recorded."""
        self._stopping = True
        cancel_activities(self._activities)

    async def all_ended(self) -> None:
        await workflow.wait_condition(lambda: self.running == 0)

    async def _run(self, try_request: TaskTryRequest, queue: str, refusal: str | None) -> None:
        started = workflow.now()
        if refusal is not None:
            # Retrying cannot help: the pool is missing or too small on this deployment.
            error = TaskError(type=FailureType.POOL_UNAVAILABLE, message=refusal)
            result = await self._without_result(try_request, started, error, retry=False)
        else:
            outcome = await self._run_activity(try_request, queue, started)
            if outcome is None:
                # The run stopped this try; Airflow's marking already decided its task instance.
                self.running -= 1
                return
            result = outcome
        self._xcoms.store(result)
        self.running -= 1
        self.finished.append(result)

    async def _run_activity(self, try_request: TaskTryRequest, queue: str, started: datetime) -> TaskTryResult | None:
        activity = start_task_try(try_request, queue, self._options)
        self._activities.add(activity)
        activity.add_done_callback(self._activities.discard)
        try:
            return await activity
        except ActivityError as err:
            if self._stopping:
                return None
            cause = err.cause or err
            error = TaskError(type=type(cause).__name__, message=str(cause))
            retry = try_request.try_number <= try_request.max_tries
            result = await self._without_result(try_request, started, error, retry=retry)
            # Nor did its runner reach the try's retry or failure callback.
            if (callback := self._dag_run.unreported_failure_callback(result)) is not None:
                await run_callbacks(callback, self._options)
            return result

    async def _without_result(
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
        await publish_task_event(TaskEvent.of_try(workflow.info().workflow_id, try_request, result))
        return result
