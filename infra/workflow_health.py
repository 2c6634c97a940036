"""Whether a workflow is stuck: its workflow tasks fail or time out again and again.

A workflow task that fails (an exception in workflow code, a payload that cannot be decoded) or
times out is retried by the server for as long as the workflow runs: nothing ends, and a caller
waiting for the result waits in silence. The server says how many times the pending workflow
task has been tried; the first failure of the series is in the history.
"""

from __future__ import annotations

from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle

# From this attempt on a workflow task counts as stuck: the server retries a failed one at once,
# then with a growing delay, so the third attempt comes within seconds of the first failure.
STUCK_FROM_ATTEMPT = 3


async def stuck_reason(handle: WorkflowHandle[Any, Any]) -> str | None:
    """Why the workflow cannot progress, or None while its workflow tasks complete.

    Raises ``temporalio.service.RPCError`` when the workflow cannot be described (NOT_FOUND if
    there is none).
    """
    description = (await handle.describe()).raw_description
    if not description.HasField("pending_workflow_task"):
        return None
    attempt = description.pending_workflow_task.attempt
    if attempt < STUCK_FROM_ATTEMPT:
        return None
    return f"its workflow task has been tried {attempt} times: {await _first_failure(handle)}"


async def _first_failure(handle: WorkflowHandle[Any, Any]) -> str:
    """The latest workflow-task failure or timeout the history recorded (later retries are not)."""
    reason = "no failure recorded yet"
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            failure = event.workflow_task_failed_event_attributes.failure
            reason = failure.message or "failed"
            if failure.application_failure_info.type:
                reason = f"{failure.application_failure_info.type}: {reason}"
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
            reason = "timed out (no worker completed it in time)"
    return reason
