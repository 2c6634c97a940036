"""What ``dagbridge pause`` / ``unpause`` / ``backfill`` do: talk to the schedule and backfill workflows."""

from __future__ import annotations

import asyncio
from datetime import datetime

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from schemas.ids import asset_schedule_workflow_id, backfill_workflow_id, schedule_workflow_id
from schemas.names import BACKFILL_PROGRESS_QUERY, BACKFILL_WORKFLOW, SCHEDULE_STATUS_QUERY, SET_PAUSED_UPDATE
from schemas.runs import RunOptions
from schemas.schedules import BackfillOutcome, BackfillProgress, BackfillRequest, ReprocessBehavior, ScheduleStatus


class NoSchedule(LookupError):
    """The DAG has no schedule workflow: no worker saw it scheduled in its dags folder."""


async def set_paused(client: Client, dag_id: str, paused: bool) -> bool:
    """Pause or unpause the DAG's time schedule and its asset schedule, whichever it has.

    Returns whether it was paused. Raises ``NoSchedule`` when it has neither.
    """
    answers = await asyncio.gather(
        _update_paused(client, schedule_workflow_id(dag_id), paused),
        _update_paused(client, asset_schedule_workflow_id(dag_id), paused),
    )
    found = [was_paused for was_paused in answers if was_paused is not None]
    if not found:
        raise NoSchedule(f"DAG {dag_id!r} has no schedule: no worker found it scheduled in its dags folder")
    return any(found)


async def _update_paused(client: Client, workflow_id: str, paused: bool) -> bool | None:
    """Whether the workflow's DAG was paused; ``None`` when no such workflow runs."""
    try:
        return await client.get_workflow_handle(workflow_id).execute_update(SET_PAUSED_UPDATE, paused, result_type=bool)
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            return None
        raise


async def schedule_status(client: Client, dag_id: str) -> ScheduleStatus:
    """Raises ``NoSchedule`` when the DAG has no schedule workflow."""
    handle = client.get_workflow_handle(schedule_workflow_id(dag_id))
    try:
        return await handle.query(SCHEDULE_STATUS_QUERY, result_type=ScheduleStatus)
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            raise NoSchedule(f"DAG {dag_id!r} has no schedule") from err
        raise


async def start_backfill(
    client: Client,
    task_queue: str,
    dag_id: str,
    from_date: datetime,
    to_date: datetime,
    *,
    reprocess_behavior: ReprocessBehavior = ReprocessBehavior.NONE,
    max_active_runs: int | None = None,
    run_backwards: bool = False,
    options: RunOptions | None = None,
) -> WorkflowHandle[object, BackfillProgress]:
    """Start the backfill of this range, or join the one already running for it.

    A finished backfill of the same range may run again: its runs already exist, so it starts
    none of them a second time (unless asked to reprocess).
    """
    request = BackfillRequest(
        dag_id=dag_id,
        from_date=from_date,
        to_date=to_date,
        reprocess_behavior=reprocess_behavior,
        max_active_runs=max_active_runs,
        run_backwards=run_backwards,
        options=options or RunOptions(default_task_queue=task_queue),
    )
    return await client.start_workflow(
        BACKFILL_WORKFLOW,
        request,
        id=backfill_workflow_id(dag_id, from_date, to_date),
        task_queue=task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        result_type=BackfillProgress,
    )


async def backfill_progress(handle: WorkflowHandle[object, BackfillProgress]) -> BackfillProgress:
    return await handle.query(BACKFILL_PROGRESS_QUERY, result_type=BackfillProgress)


def describe_progress(progress: BackfillProgress) -> str:
    """One line: how many runs of the backfill started, ended, were skipped and why."""
    counts = {outcome: 0 for outcome in BackfillOutcome}
    for item in progress.items:
        if item.outcome is not None:
            counts[item.outcome] += 1
    ran = [item for item in progress.items if item.outcome in (BackfillOutcome.STARTED, BackfillOutcome.REPROCESSED)]
    finished = [item for item in ran if item.state is not None]
    failed = sum(item.state != "success" for item in finished)
    waiting = sum(item.outcome is None for item in progress.items)
    return (
        f"{progress.dag_id}: {len(progress.items)} intervals: {counts[BackfillOutcome.STARTED]} started, "
        f"{counts[BackfillOutcome.REPROCESSED]} reprocessed, {counts[BackfillOutcome.ALREADY_EXISTS]} already existed, "
        f"{counts[BackfillOutcome.IN_FLIGHT]} in flight elsewhere, {waiting} waiting; "
        f"{len(finished)}/{len(ran)} finished ({failed} failed)" + (" [cancelled]" if progress.cancelled else "")
    )
