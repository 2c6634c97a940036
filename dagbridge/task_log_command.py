"""``dagbridge logs``: print a task try's log, and follow it while the try runs."""

from __future__ import annotations

import asyncio
import functools
import sys

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from infra.task_logs import TaskLogNotFound, TaskLogStore
from infra.temporal import connect
from schemas.ids import TryId, dag_run_workflow_id
from schemas.settings import Settings

FOLLOW_POLL_SECONDS = 0.5


class LogCommandError(RuntimeError):
    """What the user asked for cannot be printed; the message is the one line to show."""


async def _try_running(client: Client, workflow_id: str, task_id: str, map_index: int, try_number: int) -> bool:
    """Whether an activity of that try (any poke) is still pending in its run's workflow."""
    try:
        description = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    if description.status != WorkflowExecutionStatus.RUNNING:
        return False
    for pending in description.raw_description.pending_activities:
        try_id = TryId.parse_activity_id(pending.activity_id)
        if try_id is not None and (try_id.task_id, try_id.map_index, try_id.try_number) == (
            task_id,
            map_index,
            try_number,
        ):
            return True
    return False


async def print_task_log(
    settings: Settings,
    dag_id: str,
    run_id: str,
    task_id: str,
    *,
    map_index: int = -1,
    try_number: int | None = None,
    follow: bool = False,
) -> None:
    """Print the try's log (the latest try when ``try_number`` is None) to stdout.

    With ``follow``, keep printing what the try appends until its activity is no longer pending.
    Raises ``LogCommandError`` when there is no such log, ``RPCError`` when Temporal cannot be asked.
    """
    store = TaskLogStore(settings.logs_base)
    if try_number is None:
        attempts = await asyncio.to_thread(store.attempts, dag_id, run_id, task_id, map_index)
        if not attempts:
            label = task_id if map_index < 0 else f"{task_id}[{map_index}]"
            raise LogCommandError(f"no log of {label} in DAG run {dag_id} {run_id} under {settings.logs_base}")
        try_number = attempts[-1]
    offset = 0
    client = await connect(settings) if follow else None
    while True:
        try:
            chunk = await asyncio.to_thread(
                functools.partial(store.read, dag_id, run_id, task_id, map_index, try_number, offset=offset)
            )
        except TaskLogNotFound as err:
            if client is None:
                raise LogCommandError(f"no log at {err}") from None
            chunk = b""
        if chunk:
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
            offset += len(chunk)
        if client is None:
            return
        running = await _try_running(client, dag_run_workflow_id(dag_id, run_id), task_id, map_index, try_number)
        if not running:
            # The try may have written its last lines between the read and the check.
            try:
                rest = await asyncio.to_thread(
                    functools.partial(store.read, dag_id, run_id, task_id, map_index, try_number, offset=offset)
                )
            except TaskLogNotFound as err:
                raise LogCommandError(f"no log at {err}") from None
            sys.stdout.buffer.write(rest)
            sys.stdout.buffer.flush()
            return
        await asyncio.sleep(FOLLOW_POLL_SECONDS)
