"""Read what a workflow did from its Temporal history."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle


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
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            activity_id = ids[event.activity_task_completed_event_attributes.scheduled_event_id]
            times[activity_id] = (times[activity_id][0], event.event_time.ToDatetime(UTC))
    return times
