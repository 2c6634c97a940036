"""The workflow of one backfill: ``backfill:<dag_id>:<from>:<to>``.

Airflow's backfill code lays out the intervals (an activity asks it, with the runs of those
intervals that already exist); this workflow starts ``backfill__<...>`` runs in that order, no
more in flight than ``max_active_runs``, as child workflows under their never-reused run IDs:
running the same backfill again finds every run taken and starts nothing new. Reprocessing
(``failed`` / ``completed``) runs an interval's existing run again under the same (dag_id,
run_id), as Airflow clears and re-runs it: a new execution of the same workflow ID. Cancelled,
it starts no more runs; the runs already started finish, as in Airflow.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from datetime import timedelta

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ChildWorkflowError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from schemas.ids import dag_run_workflow_id
    from schemas.names import BACKFILL_PROGRESS_QUERY, BACKFILL_WORKFLOW, DAG_RUN_WORKFLOW, PLAN_BACKFILL_ACTIVITY
    from schemas.runs import DagRunResult
    from schemas.schedules import (
        BackfillItem,
        BackfillOutcome,
        BackfillPlan,
        BackfillProgress,
        BackfillRequest,
        ExistingRun,
        ReprocessBehavior,
        ScheduledRun,
    )
    from workflows.dag_schedule import start_request

PLAN_TIMEOUT = timedelta(minutes=5)


def outcome_for(existing: ExistingRun | None, behavior: ReprocessBehavior) -> BackfillOutcome:
    """Airflow's rule (``_get_dag_run_no_create_reason``) for an interval that may already have a run."""
    if existing is None:
        return BackfillOutcome.STARTED
    if existing.state not in ("success", "failed"):
        return BackfillOutcome.IN_FLIGHT
    if behavior is ReprocessBehavior.COMPLETED or (behavior is ReprocessBehavior.FAILED and existing.state == "failed"):
        return BackfillOutcome.REPROCESSED
    return BackfillOutcome.ALREADY_EXISTS


@workflow.defn(name=BACKFILL_WORKFLOW)
class BackfillWorkflow:
    def __init__(self) -> None:
        self._dag_id = ""
        self._items: list[BackfillItem] = []
        self._in_flight = 0
        self._cancelled = False
        self._followers: list[asyncio.Task[None]] = []

    @workflow.run
    async def run(self, request: BackfillRequest) -> BackfillProgress:
        self._dag_id = request.dag_id
        plan = await workflow.execute_activity(
            PLAN_BACKFILL_ACTIVITY, request, result_type=BackfillPlan, start_to_close_timeout=PLAN_TIMEOUT
        )
        self._items = [BackfillItem(run_id=run.run_id, logical_date=run.logical_date) for run in plan.runs]
        try:
            for index, run in enumerate(plan.runs):
                await workflow.wait_condition(lambda: self._in_flight < plan.max_active_runs)
                await self._start(index, request, run, plan.existing.get(run.run_id))
            await workflow.wait_condition(lambda: self._in_flight == 0)
        except asyncio.CancelledError:
            # Started runs go on; nothing more starts.
            self._cancelled = True
        return self.progress()

    @workflow.query(name=BACKFILL_PROGRESS_QUERY)
    def progress(self) -> BackfillProgress:
        return BackfillProgress(dag_id=self._dag_id, items=list(self._items), cancelled=self._cancelled)

    async def _start(
        self, index: int, request: BackfillRequest, run: ScheduledRun, existing: ExistingRun | None
    ) -> None:
        outcome = outcome_for(existing, request.reprocess_behavior)
        if outcome is BackfillOutcome.REPROCESSED and existing is not None:
            run = run.model_copy(update={"run_id": existing.run_id, "run_type": existing.run_type})
            reuse = WorkflowIDReusePolicy.ALLOW_DUPLICATE
        elif outcome is BackfillOutcome.STARTED:
            reuse = WorkflowIDReusePolicy.REJECT_DUPLICATE
        else:
            self._items[index] = self._items[index].model_copy(update={"outcome": outcome})
            return
        try:
            handle = await workflow.start_child_workflow(
                DAG_RUN_WORKFLOW,
                start_request(request.dag_id, run, request.options),
                id=dag_run_workflow_id(request.dag_id, run.run_id),
                task_queue=workflow.info().task_queue,
                id_reuse_policy=reuse,
                parent_close_policy=ParentClosePolicy.ABANDON,
                result_type=DagRunResult,
            )
        except WorkflowAlreadyStartedError:
            # Started since the plan was made (or running, for a reprocess): not a second run.
            taken = BackfillOutcome.IN_FLIGHT if existing is not None else BackfillOutcome.ALREADY_EXISTS
            self._items[index] = self._items[index].model_copy(update={"outcome": taken})
            return
        self._items[index] = self._items[index].model_copy(update={"outcome": outcome, "run_id": run.run_id})
        self._in_flight += 1
        self._followers.append(asyncio.create_task(self._follow(index, handle)))

    async def _follow(self, index: int, handle: workflow.ChildWorkflowHandle[object, DagRunResult]) -> None:
        state = "failed"
        with suppress(ChildWorkflowError):
            state = (await handle).state
        self._items[index] = self._items[index].model_copy(update={"state": state})
        self._in_flight -= 1
