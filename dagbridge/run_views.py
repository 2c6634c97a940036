"""``dagbridge runs``, ``status`` and ``run``'s wait: DAG runs as Temporal's visibility and the workflows see them."""

from __future__ import annotations

import asyncio
import re
import sys
from datetime import datetime
from typing import Any

from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from infra.temporal import connect
from infra.workflow_health import stuck_reason
from schemas import run_attributes
from schemas.ids import dag_run_workflow_id
from schemas.names import DAG_RUN_WORKFLOW, RUN_STATUS_QUERY
from schemas.runs import DagRunResult, TaskInstanceResult
from schemas.settings import Settings

# How often a caller waiting for a run's result looks whether the run is stuck.
STUCK_CHECK_SECONDS = 5.0

# Airflow's DAG id alphabet: anything else cannot name a DAG, and must not reach a visibility query.
_DAG_ID = re.compile(r"[A-Za-z0-9_.-]+")


class RunViewError(RuntimeError):
    """The command cannot answer; the message is the one line to show."""


def runs_query(dag_id: str | None, state: str | None) -> str:
    """The visibility query of ``dagbridge runs``; raises ``RunViewError`` on a DAG id or state that cannot match."""
    clauses = [f"WorkflowType = '{DAG_RUN_WORKFLOW}'", "ExecutionStatus != 'ContinuedAsNew'"]
    if dag_id is not None:
        if not _DAG_ID.fullmatch(dag_id):
            raise RunViewError(f"{dag_id!r} is not a DAG id (letters, digits, '_', '.', '-')")
        clauses.append(f"{run_attributes.DAG_ID.name} = '{dag_id}'")
    if state is not None:
        clauses.append(f"{run_attributes.RUN_STATE.name} = '{state}'")
    return " AND ".join(clauses)


async def list_runs(settings: Settings, dag_id: str | None, state: str | None, limit: int) -> list[dict[str, Any]]:
    """The newest runs first, each with its search attributes and times."""
    client = await connect(settings)
    runs = []
    async for execution in client.list_workflows(runs_query(dag_id, state), limit=limit):
        attributes = execution.typed_search_attributes
        runs.append(
            {
                "dag_id": attributes.get(run_attributes.DAG_ID),
                "run_id": attributes.get(run_attributes.RUN_ID),
                "run_type": attributes.get(run_attributes.RUN_TYPE),
                "state": attributes.get(run_attributes.RUN_STATE),
                "trigger_source": attributes.get(run_attributes.TRIGGER_SOURCE),
                "workflow_id": execution.id,
                "workflow_status": execution.status.name.lower() if execution.status else None,
                "start_time": execution.start_time,
                "close_time": execution.close_time,
            }
        )
    return runs


async def result_or_stuck_notice(handle: WorkflowHandle[Any, DagRunResult], dag_id: str, run_id: str) -> DagRunResult:
    """The run's result; meanwhile, one line on stderr each time the run is found stuck for a new reason.

    The run is waited for still: a stuck workflow task resumes once a fixed worker is deployed.
    Raises what ``WorkflowHandle.result`` raises (``WorkflowFailureError`` for a failed run).
    """
    result = asyncio.ensure_future(handle.result())
    reported = None
    try:
        while not (await asyncio.wait({result}, timeout=STUCK_CHECK_SECONDS))[0]:
            reason = await stuck_reason(handle)
            if reason is not None and reason != reported:
                print(f"dagbridge: DAG run {dag_id} {run_id} is stuck: {reason}", file=sys.stderr, flush=True)
                reported = reason
    finally:
        result.cancel()
    return result.result()


def _duration(ti: TaskInstanceResult) -> float | None:
    if ti.start_date is None or ti.end_date is None:
        return None
    return round((ti.end_date - ti.start_date).total_seconds(), 3)


async def run_status(settings: Settings, dag_id: str, run_id: str) -> dict[str, Any]:
    """The run's task grid: from its result once it succeeded, else from its workflow's run_status query.

    A closed run that did not complete answers the query by replay, so a worker must be up.
    Raises ``RunViewError`` when there is no such run or the query cannot be answered.
    """
    client = await connect(settings)
    handle = client.get_workflow_handle(dag_run_workflow_id(dag_id, run_id), result_type=DagRunResult)
    try:
        description = await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise RunViewError(f"no DAG run {dag_id} {run_id} (no workflow {handle.id})") from None
        raise RunViewError(f"cannot describe {handle.id}: {err.message}") from None
    stuck = await stuck_reason(handle) if description.status == WorkflowExecutionStatus.RUNNING else None
    if stuck is not None:
        # Its workflow cannot answer a query either: what is known is why it is stuck.
        return {
            "dag_id": dag_id,
            "run_id": run_id,
            "state": "stuck",
            "workflow_status": "running",
            "error": stuck,
            "task_instances": [],
        }
    try:
        if description.status == WorkflowExecutionStatus.COMPLETED:
            result = await handle.result()
        else:
            result = await handle.query(RUN_STATUS_QUERY, result_type=DagRunResult)
    except RPCError as err:
        raise RunViewError(f"cannot read the state of {handle.id}: {err.message}") from None
    state = description.search_attributes.get(run_attributes.RUN_STATE.name)
    return {
        "dag_id": dag_id,
        "run_id": run_id,
        "state": state[0] if state else result.state,
        "workflow_status": description.status.name.lower() if description.status else None,
        "error": result.error,
        "task_instances": [
            {
                "task_id": ti.task_id,
                "map_index": ti.map_index,
                "state": ti.state,
                "try_number": ti.try_number,
                "start_date": ti.start_date,
                "end_date": ti.end_date,
                "duration_seconds": _duration(ti),
            }
            for ti in result.task_instances
        ],
    }


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "-"


def runs_table(runs: list[dict[str, Any]]) -> str:
    lines = [f"{'DAG':<24} {'RUN ID':<44} {'TYPE':<18} {'STATE':<9} {'SOURCE':<9} STARTED"]
    for run in runs:
        lines.append(
            f"{run['dag_id'] or '-':<24} {run['run_id'] or '-':<44} {run['run_type'] or '-':<18} "
            f"{run['state'] or '-':<9} {run['trigger_source'] or '-':<9} {_when(run['start_time'])}"
        )
    return "\n".join(lines)


def status_table(status: dict[str, Any]) -> str:
    lines = [f"{status['dag_id']} {status['run_id']}: {status['state']}"]
    if status["error"]:
        lines.append(f"  error: {status['error']}")
    lines.append(f"  {'TASK':<40} {'STATE':<18} {'TRY':>3} {'DURATION':>10}")
    for ti in status["task_instances"]:
        label = ti["task_id"] if ti["map_index"] < 0 else f"{ti['task_id']}[{ti['map_index']}]"
        duration = "-" if ti["duration_seconds"] is None else f"{ti['duration_seconds']:.1f}s"
        lines.append(f"  {label:<40} {ti['state'] or 'none':<18} {ti['try_number']:>3} {duration:>10}")
    return "\n".join(lines)
