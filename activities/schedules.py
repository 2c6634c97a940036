"""Activities of schedules and backfills: Airflow's timetable answers, and which runs already exist.

The schedule workflow asks :meth:`ScheduleActivities.next_scheduled_run` before every wait and
again when the wait ends, so a DAG file that changed, a clock that jumped or catchup being off
(the timetable then skips to the latest interval) is always judged by the timetable as it is now.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from typing import Any

from airflow.exceptions import AirflowException
from airflow.serialization.definitions.dag import SerializedDAG
from temporalio import activity
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities import timetables
from activities.dag_loader import DagLoader, DagNotFound
from schemas.errors import FailureType, ScheduleFailure
from schemas.ids import dag_run_workflow_id
from schemas.names import NEXT_SCHEDULED_RUN_ACTIVITY, PLAN_BACKFILL_ACTIVITY, RUN_STATES_ACTIVITY
from schemas.runs import DagRunResult, RunType
from schemas.schedules import (
    BackfillPlan,
    BackfillRequest,
    DagSchedule,
    ExistingRun,
    ScheduleAnswer,
    ScheduleQuery,
)

RUNNING = "running"
FAILED = "failed"


class SchedulerViews:
    """Each DAG's scheduler view (the serialized round trip), made again only when its file changed."""

    def __init__(self, loader: DagLoader) -> None:
        self._loader = loader
        self._views: dict[str, tuple[Any, SerializedDAG]] = {}
        self._lock = threading.Lock()

    def get(self, dag_id: str) -> SerializedDAG:
        """Raises ``DagNotFound``, or what Airflow's serialization raises for the DAG."""
        dag = self._loader.get_dag(dag_id)
        with self._lock:
            cached = self._views.get(dag_id)
            if cached is not None and cached[0] is dag:
                return cached[1]
        view = timetables.scheduler_view(dag)
        with self._lock:
            self._views[dag_id] = (dag, view)
        return view


def dag_schedule(view: SerializedDAG, query: ScheduleQuery) -> ScheduleAnswer:
    problem = timetables.scheduling_problem(view)
    schedule = DagSchedule(
        fingerprint=timetables.schedule_fingerprint(view),
        is_paused_upon_creation=bool(view.is_paused_upon_creation),
        max_active_runs=view.max_active_runs,
        next_run=None if problem else timetables.next_scheduled_run(view, query.last),
    )
    # Read after the timetable: a run it placed at "now" is then never later than as_of.
    return ScheduleAnswer(as_of=datetime.now(UTC), schedule=schedule, problem=problem)


class ScheduleActivities:
    def __init__(self, client: Client, views: SchedulerViews) -> None:
        self._client = client
        self._views = views

    @activity.defn(name=NEXT_SCHEDULED_RUN_ACTIVITY)
    def next_scheduled_run(self, query: ScheduleQuery) -> ScheduleAnswer:
        """The DAG's next scheduled run after ``query.last``, as its timetable says now."""
        try:
            view = self._views.get(query.dag_id)
        except DagNotFound as err:
            return ScheduleAnswer(as_of=datetime.now(UTC), schedule=None, problem=str(err))
        return dag_schedule(view, query)

    @activity.defn(name=PLAN_BACKFILL_ACTIVITY)
    async def plan_backfill(self, request: BackfillRequest) -> BackfillPlan:
        """The backfill's runs in order and the runs of the same intervals that already exist.

        Raises a non-retryable ``InvalidBackfill`` when Airflow refuses the backfill, and a
        non-retryable ``DagNotFound`` when the DAG is not in the dags folder.
        """
        try:
            view = await asyncio.to_thread(self._views.get, request.dag_id)
        except DagNotFound as err:
            raise ApplicationError(str(err), type=FailureType.DAG_NOT_FOUND, non_retryable=True) from err
        try:
            runs = await asyncio.to_thread(
                timetables.backfill_runs,
                view,
                request.from_date,
                request.to_date,
                reverse=request.run_backwards,
                reprocess_behavior=request.reprocess_behavior,
            )
        except (AirflowException, ValueError) as err:
            raise ApplicationError(str(err), type=ScheduleFailure.INVALID_BACKFILL, non_retryable=True) from err
        # A run of the same interval exists under the scheduler's ID or this backfill's own.
        candidates = {
            run.run_id: [(timetables.scheduled_run_id(view, run), RunType.SCHEDULED), (run.run_id, RunType.BACKFILL)]
            for run in runs
        }
        states = await self._states(request.dag_id, [run_id for pairs in candidates.values() for run_id, _ in pairs])
        existing = {}
        for backfill_run_id, pairs in candidates.items():
            for run_id, run_type in pairs:
                if (state := states.get(run_id)) is not None:
                    existing[backfill_run_id] = ExistingRun(run_id=run_id, run_type=run_type, state=state)
        return BackfillPlan(
            runs=runs, max_active_runs=request.max_active_runs or view.max_active_runs, existing=existing
        )

    @activity.defn(name=RUN_STATES_ACTIVITY)
    async def run_states(self, dag_id: str, run_ids: list[str]) -> dict[str, str]:
        """``running`` or the final state of each of these runs of the DAG that exists."""
        return await self._states(dag_id, run_ids)

    async def _states(self, dag_id: str, run_ids: list[str]) -> dict[str, str]:
        states = await asyncio.gather(*(self._state(dag_id, run_id) for run_id in run_ids))
        return {run_id: state for run_id, state in zip(run_ids, states, strict=True) if state is not None}

    async def _state(self, dag_id: str, run_id: str) -> str | None:
        handle = self._client.get_workflow_handle(dag_run_workflow_id(dag_id, run_id), result_type=DagRunResult)
        try:
            description = await handle.describe()
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:
                return None
            raise
        status = description.raw_description.workflow_execution_info.status
        if status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING:
            return RUNNING
        if status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED:
            return (await handle.result()).state
        # Terminated, timed out, cancelled or failed: the run did not succeed.
        return FAILED
