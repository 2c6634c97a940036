"""The triggerer: deferred tasks' triggers, many at once on the worker's event loop.

One ``run_trigger`` activity per deferral, on a worker of its own (``<task_queue>-triggers``)
that runs async activities only: a waiting trigger costs a coroutine and a heartbeat, not a
task process. A trigger is what Airflow's triggerer runs (``classpath(**kwargs)``), until its
first event, as Airflow's triggerer hands only the first one to the task. If this worker dies,
the activity's heartbeat timeout starts the trigger again on another worker; the workflow takes
the first result, so the task resumes once.
"""

from __future__ import annotations

import asyncio
import traceback
from contextlib import aclosing, suppress
from datetime import UTC, datetime

from airflow._shared.module_loading import import_string
from airflow.sdk.serde import deserialize, serialize
from airflow.serialization.decoders import smart_decode_trigger_kwargs
from airflow.triggers.base import BaseTaskEndEvent, BaseTrigger, TriggerEvent
from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError

from activities import metrics
from activities.trigger_templates import render_trigger_templates, template_context
from schemas.names import RUN_TRIGGER_ACTIVITY
from schemas.runs import TriggerOutcome, TriggerRequest

# As long as Airflow's triggerer gives on_kill() when a user action cancels a trigger.
ON_KILL_TIMEOUT_SECONDS = 5.0
# Heartbeats per heartbeat timeout. The SDK sends the server at most one per 0.8 timeouts (and
# at most every 60 s): more would only cost the event loop that thousands of triggers share.
HEARTBEATS_PER_TIMEOUT = 4


class TriggerExitedWithoutEvent(RuntimeError):
    """The trigger's run() ended without yielding: Airflow fails the task that waited on it."""


class TriggererActivities:
    @activity.defn(name=RUN_TRIGGER_ACTIVITY)
    async def run_trigger(self, request: TriggerRequest) -> TriggerOutcome:
        """Run the trigger until its first event; a trigger that raises is an outcome, not a failure.

        Cancelled: ``cleanup()``, after the trigger's ``on_kill()`` when the run cancelled it
        before its timeout (see ``_cancelled_by_user``).
        """
        activity.logger.info("running the trigger of %s try %d", request.label, request.try_number)
        metrics.WAITING_TRIGGERS.inc()
        heartbeats = asyncio.create_task(_heartbeat())
        try:
            return await _first_event(request)
        finally:
            heartbeats.cancel()
            metrics.WAITING_TRIGGERS.dec()


async def _heartbeat() -> None:
    timeout = activity.info().heartbeat_timeout
    interval = timeout.total_seconds() / HEARTBEATS_PER_TIMEOUT if timeout else 1.0
    while True:
        activity.heartbeat()
        await asyncio.sleep(interval)


async def _cancelled_by_user(request: TriggerRequest) -> bool:
    """Whether Airflow's triggerer would call on_kill(): the trigger is no longer wanted (Airflow's
    "user action": the run was cancelled or marked failed) and its timeout has not passed.

    Not when its workflow continued as new (the next workflow starts the trigger again), nor when
    the worker shuts down (Airflow's triggerer hands its triggers on without on_kill either). A
    run that stops closes its workflow without waiting for its triggers, so a trigger may only
    learn that its workflow is gone: the workflow's status then tells why.
    """
    details = activity.cancellation_details()
    if details is None or not (details.cancel_requested or details.not_found):
        return False
    if request.timeout_after is not None and datetime.now(UTC) >= request.timeout_after:
        return False
    if details.cancel_requested:
        return True
    info = activity.info()
    try:
        described = (
            await activity.client().get_workflow_handle(info.workflow_id, run_id=info.workflow_run_id).describe()
        )
    except RPCError as err:
        activity.logger.warning(
            "not killing the trigger of %s: its workflow's status is unknown (%s)", request.label, err
        )
        return False
    return described.status is not WorkflowExecutionStatus.CONTINUED_AS_NEW


async def _first_event(request: TriggerRequest) -> TriggerOutcome:
    # Asked before anything else: a workflow that cannot answer now is worth another attempt.
    context = await template_context() if request.start_from_trigger else None
    try:
        trigger = inflate(request.classpath, request.trigger_kwargs)
    except Exception as err:
        # Airflow's triggerer: "Trigger failed to load code" / "failed to inflate" fails the task.
        return TriggerOutcome(traceback=traceback.format_exception(err))
    try:
        if context is not None:
            await render_trigger_templates(trigger, request, context)
        async with aclosing(trigger.run()) as events:
            async for event in events:
                return _outcome(event)
        raise TriggerExitedWithoutEvent("Trigger exited without sending an event. Dependent tasks will be failed.")
    except asyncio.CancelledError:
        if await _cancelled_by_user(request):
            with suppress(Exception, asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(trigger.on_kill(), timeout=ON_KILL_TIMEOUT_SECONDS)
        raise
    except Exception as err:
        return TriggerOutcome(traceback=traceback.format_exception(err))
    finally:
        # Exceptions from cleanup are ignored, as in Airflow's triggerer.
        with suppress(Exception):
            await trigger.cleanup()


def inflate(classpath: str, trigger_kwargs: dict) -> BaseTrigger:
    """The trigger as Airflow's triggerer builds it from its stored classpath and kwargs.

    Raises what importing the class or calling its constructor raises.
    """
    trigger_class = import_string(classpath)
    # As Airflow's triggerer reads them back from the trigger row (Trigger._decrypt_kwargs).
    decoded = deserialize(trigger_kwargs)
    return trigger_class(**{key: smart_decode_trigger_kwargs(value) for key, value in decoded.items()})


def _outcome(event: TriggerEvent) -> TriggerOutcome:
    if isinstance(event, BaseTaskEndEvent):
        return TriggerOutcome(end_state=str(event.task_instance_state.value), end_xcoms=event.xcoms or {})
    return TriggerOutcome(payload=serialize(event.payload))
