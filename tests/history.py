"""Read what a workflow did from its Temporal history."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter

from schemas.messages import RunEvent
from schemas.names import RUN_TASK_TRY_ACTIVITY
from schemas.runs import TaskTryResult


async def scheduled_activities(handle: WorkflowHandle) -> list[tuple[str, str, str]]:
    """(activity type, activity id, task queue) of every activity the workflow scheduled, in order."""
    history = await handle.fetch_history()
    return [
        (
            event.activity_task_scheduled_event_attributes.activity_type.name,
            event.activity_task_scheduled_event_attributes.activity_id,
            event.activity_task_scheduled_event_attributes.task_queue.name,
        )
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


async def workflows_of_run(client: Client, workflow_id: str) -> list[WorkflowHandle]:
    """Every workflow of one DAG run: the first and those it continued as."""
    return [
        client.get_workflow_handle(workflow_id, run_id=execution.run_id)
        async for execution in client.list_workflows(f"WorkflowId = '{workflow_id}'")
    ]


async def task_tries(client: Client, workflow_id: str) -> list[str]:
    """Activity ids of every task try of the run, over all its workflows, sorted."""
    tries = [
        activity_id
        for handle in await workflows_of_run(client, workflow_id)
        for kind, activity_id, _ in await scheduled_activities(handle)
        if kind == "run_task_try"
    ]
    return sorted(tries)


async def local_activity_markers(handle: WorkflowHandle, activity_type: str) -> int:
    """How many results of this local activity the workflow recorded."""
    history = await handle.fetch_history()
    return sum(
        event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and event.marker_recorded_event_attributes.marker_name == "core_local_activity"
        and json.loads(event.marker_recorded_event_attributes.details["data"].payloads[0].data)["activity_type"]
        == activity_type
        for event in history.events
    )


async def activity_attempts(handle: WorkflowHandle) -> dict[str, int]:
    """Activity id -> the attempt that ended it (Temporal's own retries, not Airflow's tries)."""
    history = await handle.fetch_history()
    scheduled = {
        event.event_id: event.activity_task_scheduled_event_attributes.activity_id
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    }
    return {
        scheduled[event.activity_task_started_event_attributes.scheduled_event_id]: (
            event.activity_task_started_event_attributes.attempt
        )
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
        and event.activity_task_started_event_attributes.scheduled_event_id in scheduled
    }


async def activity_times(handle: WorkflowHandle) -> dict[str, tuple[datetime, datetime | None]]:
    """Activity id -> when the workflow scheduled it and when its result was recorded."""
    history = await handle.fetch_history()
    ids: dict[int, str] = {}
    times: dict[str, tuple[datetime, datetime | None]] = {}
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            ids[event.event_id] = event.activity_task_scheduled_event_attributes.activity_id
            times[ids[event.event_id]] = (event.event_time.ToDatetime(UTC), None)
        elif (
            event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
            and event.activity_task_completed_event_attributes.scheduled_event_id in ids
        ):
            activity_id = ids[event.activity_task_completed_event_attributes.scheduled_event_id]
            times[activity_id] = (times[activity_id][0], event.event_time.ToDatetime(UTC))
    return times


async def started_timers(handle: WorkflowHandle) -> list[tuple[datetime, float]]:
    """When the workflow started each durable timer, and for how many seconds."""
    history = await handle.fetch_history()
    return [
        (
            event.event_time.ToDatetime(UTC),
            event.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta().total_seconds(),
        )
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED
    ]


async def activity_input_sizes(handle: WorkflowHandle) -> list[int]:
    """Bytes of each scheduled activity's input, as stored in history."""
    history = await handle.fetch_history()
    return [
        event.activity_task_scheduled_event_attributes.input.ByteSize()
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


async def published_run_event(handle: WorkflowHandle) -> RunEvent:
    """The run event the workflow gave its publish activity (what Kafka gets when it is configured)."""
    history = await handle.fetch_history()
    for event in history.events:
        attributes = event.activity_task_scheduled_event_attributes
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED and (
            attributes.activity_type.name == "publish_run_event"
        ):
            [run_event] = await pydantic_data_converter.decode(attributes.input.payloads, [RunEvent])
            return run_event
    raise AssertionError(f"{handle.id} published no run event")


ACTIVITY_ENDINGS = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: ("completed", "activity_task_completed_event_attributes"),
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: ("failed", "activity_task_failed_event_attributes"),
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: ("canceled", "activity_task_canceled_event_attributes"),
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: ("timed_out", "activity_task_timed_out_event_attributes"),
}


async def activity_endings(handle: WorkflowHandle) -> list[tuple[str, str]]:
    """(activity type or, for task tries, activity id; how it ended), in the order the activities ended."""
    history = await handle.fetch_history()
    names: dict[int, str] = {}
    endings = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attributes = event.activity_task_scheduled_event_attributes
            is_try = attributes.activity_type.name == "run_task_try"
            names[event.event_id] = attributes.activity_id if is_try else attributes.activity_type.name
        elif event.event_type in ACTIVITY_ENDINGS:
            outcome, field = ACTIVITY_ENDINGS[event.event_type]
            if (scheduled_event_id := getattr(event, field).scheduled_event_id) in names:
                endings.append((names[scheduled_event_id], outcome))
    return endings


def most_at_once(intervals: Iterable[tuple[datetime, datetime]]) -> int:
    """The most intervals open at one instant."""
    # An end and a start at the same instant do not overlap: ends sort first.
    edges = sorted(
        [(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals], key=lambda e: (e[0], e[1])
    )
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


async def try_results(handle: WorkflowHandle) -> dict[str, TaskTryResult]:
    """Activity id -> the result of each task-try activity that completed."""
    history = await handle.fetch_history()
    scheduled: dict[int, str] = {}
    results = {}
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attributes = event.activity_task_scheduled_event_attributes
            if attributes.activity_type.name == RUN_TASK_TRY_ACTIVITY:
                scheduled[event.event_id] = attributes.activity_id
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            attributes = event.activity_task_completed_event_attributes
            if attributes.scheduled_event_id in scheduled:
                [result] = await pydantic_data_converter.decode(attributes.result.payloads, [TaskTryResult])
                results[scheduled[attributes.scheduled_event_id]] = result
    return results
