"""How the DAG-run workflow calls its activities: by name, with typed payloads, timeouts and retries."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ActivityCancellationType, ActivityHandle

with workflow.unsafe.imports_passed_through():
    from airflow.callbacks.callback_requests import DagCallbackRequest, TaskCallbackRequest
    from airflow.configuration import conf as airflow_conf

    from schemas.errors import NON_RETRYABLE_TRY_ERRORS, FailureType
    from schemas.ids import TryId, triggers_task_queue
    from schemas.limits import SlotAnswers, SlotChanges
    from schemas.messages import RunEvent, TaskEvent
    from schemas.names import (
        CHANGE_SLOTS_ACTIVITY,
        LOAD_SERIALIZED_DAG_ACTIVITY,
        PUBLISH_RUN_EVENT_ACTIVITY,
        PUBLISH_TASK_EVENT_ACTIVITY,
        RUN_CALLBACKS_ACTIVITY,
        RUN_TASK_TRY_ACTIVITY,
        RUN_TRIGGER_ACTIVITY,
    )
    from schemas.runs import RunOptions, TaskTryRequest, TaskTryResult, TriggerOutcome, TriggerRequest
    from workflows import run_view
    from workflows.stopping import despite_cancellation

# Task failures come back as results and follow Airflow's own retry rules; Temporal only
# retries what never produced a result (a worker that died, a lost connection).
ACTIVITY_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=10,
    non_retryable_error_types=NON_RETRYABLE_TRY_ERRORS,
)

# An event must not be lost: publishing is retried for as long as Kafka stays away.
EVENT_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=0,
)
EVENT_PUBLISH_TIMEOUT = timedelta(seconds=30)

# A callback that raises is caught and counted inside the activity: what fails the activity is a
# lost worker or a timeout (worth another attempt or two, not more: callbacks are user code) or a
# DAG the worker cannot load (worth none).
CALLBACK_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_attempts=3,
    non_retryable_error_types=NON_RETRYABLE_TRY_ERRORS,
)
# As long as Airflow's DAG processor, which runs these callbacks there, may work on one file.
CALLBACK_TIMEOUT = timedelta(seconds=airflow_conf.getint("dag_processor", "dag_file_processor_timeout"))
# A trigger whose worker died starts again elsewhere for as long as the task would wait.
TRIGGER_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=0,
)
# Slots are given back even while the Temporal frontend is away: a lost release leaks a slot.
SLOT_CHANGES_RETRY_POLICY = RetryPolicy(maximum_interval=timedelta(seconds=10), maximum_attempts=0)


async def load_serialized_dag(dag_id: str) -> dict[str, Any]:
    """The DAG as the worker's dags folder has it.

    Raises ``ApplicationError`` (non-retryable, type DagNotFound) when the folder has no such DAG.
    """
    try:
        # Local: the worker that runs this workflow has the dags folder, so the DAG is read
        # without a round trip through the server, and the result is still in history.
        serialized_dag: dict[str, Any] = await workflow.execute_local_activity(
            LOAD_SERIALIZED_DAG_ACTIVITY,
            dag_id,
            result_type=dict,
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=ACTIVITY_RETRY_POLICY,
        )
        return serialized_dag
    except ActivityError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError) and cause.type == FailureType.DAG_NOT_FOUND:
            raise ApplicationError(cause.message, type=FailureType.DAG_NOT_FOUND, non_retryable=True) from err
        raise


async def change_slots(changes: SlotChanges) -> SlotAnswers:
    # Local: the exchange is on the path between a try's end and the next try's start, and a
    # local activity saves the round trips through the server's activity queue.
    answers: SlotAnswers = await workflow.execute_local_activity(
        CHANGE_SLOTS_ACTIVITY,
        changes,
        result_type=SlotAnswers,
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=SLOT_CHANGES_RETRY_POLICY,
    )
    return answers


def start_task_try(try_request: TaskTryRequest, queue: str, options: RunOptions) -> ActivityHandle[TaskTryResult]:
    return workflow.start_activity(
        RUN_TASK_TRY_ACTIVITY,
        try_request,
        result_type=TaskTryResult,
        activity_id=_activity_id(try_request),
        summary=run_view.try_summary(try_request),
        task_queue=queue,
        start_to_close_timeout=timedelta(seconds=options.task_start_to_close_timeout_seconds),
        heartbeat_timeout=timedelta(seconds=options.task_heartbeat_timeout_seconds),
        retry_policy=dataclasses.replace(ACTIVITY_RETRY_POLICY, maximum_attempts=options.task_attempts),
        # A stopped run waits until its tasks are really dead, not just asked to die.
        cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    )


def start_trigger(
    request: TriggerRequest, deferral_number: int, queue: str, options: RunOptions
) -> ActivityHandle[TriggerOutcome]:
    """Run the trigger of the try's deferral ``deferral_number`` (from 0) until its first event, on the
    triggerer of the task's Temporal task ``queue``."""
    try_id = TryId(request.task_id, request.map_index, request.try_number, resume_count=deferral_number)
    return workflow.start_activity(
        RUN_TRIGGER_ACTIVITY,
        request,
        result_type=TriggerOutcome,
        activity_id=try_id.trigger_activity_id(),
        task_queue=triggers_task_queue(queue),
        start_to_close_timeout=timedelta(seconds=options.task_start_to_close_timeout_seconds),
        heartbeat_timeout=timedelta(seconds=options.trigger_heartbeat_timeout_seconds),
        retry_policy=TRIGGER_RETRY_POLICY,
        cancellation_type=ActivityCancellationType.TRY_CANCEL,
    )


async def run_callbacks(callback: DagCallbackRequest | TaskCallbackRequest, options: RunOptions) -> None:
    """Run Airflow callbacks; like Airflow, whatever happens to them leaves the outcome as it is."""
    try:
        await workflow.execute_activity(
            RUN_CALLBACKS_ACTIVITY,
            callback,
            result_type=list[str],
            task_queue=options.default_task_queue,
            start_to_close_timeout=CALLBACK_TIMEOUT,
            heartbeat_timeout=timedelta(seconds=options.task_heartbeat_timeout_seconds),
            retry_policy=CALLBACK_RETRY_POLICY,
        )
    except ActivityError as err:
        workflow.logger.warning("%s did not run: %s", callback.type, err.cause or err)


async def publish_task_event(event: TaskEvent) -> None:
    await workflow.execute_activity(
        PUBLISH_TASK_EVENT_ACTIVITY,
        event,
        start_to_close_timeout=EVENT_PUBLISH_TIMEOUT,
        retry_policy=EVENT_RETRY_POLICY,
    )


async def publish_run_event(event: RunEvent) -> None:
    """Published even when the workflow is cancelled meanwhile: the run's outcome is decided."""
    await despite_cancellation(
        workflow.execute_activity(
            PUBLISH_RUN_EVENT_ACTIVITY,
            event,
            start_to_close_timeout=EVENT_PUBLISH_TIMEOUT,
            retry_policy=EVENT_RETRY_POLICY,
        )
    )


def _activity_id(try_request: TaskTryRequest) -> str:
    """Unique per poke: a rescheduled sensor pokes again under the same try number."""
    return TryId(
        try_request.task_id,
        try_request.map_index,
        try_request.try_number,
        try_request.reschedule_count,
        try_request.resume_count,
    ).activity_id()
