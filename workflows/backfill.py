"""The workflow of one backfill: ``backfill:<dag_id>:<from>:<to>``.

Airflow's backfill code lays out the intervals (an activity asks it, with the runs of those
intervals that already exist); this workflow starts ``backfill__<...>`` runs in that order, no
more in flight than ``max_active_runs``, as child workflows under their never-reused run IDs:
running the same backfill again finds every run taken and starts nothing new. Reprocessing
(``failed`` / ``completed``) runs an interval's existing run again under the same (dag_id,
run_id), as Airflow clears and re-runs it: a new execution of the same workflow ID. Cancelled,
it starts no more runs; the runs already started finish, as in Airflow.

A backfill of thousands of intervals would grow one history without bound: once the history is
long (Temporal suggests it, or ``history_events_per_workflow``), the workflow starts no more runs,
waits for those it started (their end reaches only it: they are its children) and continues as
new with one :class:`BackfillState`, which the next execution goes on from. Every execution
starts at least one run, so a bound smaller than one start needs still makes progress.
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
        BackfillState,
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
        state = request.state or await self._plan(request)
        self._items = list(state.items)
        first = len(state.items) - len(state.remaining)
        try:
            for offset, run in enumerate(state.remaining):
                await workflow.wait_condition(lambda: self._in_flight < state.max_active_runs)
                if offset > 0 and self._history_is_long(request):
                    await workflow.wait_condition(lambda: self._in_flight == 0 and workflow.all_handlers_finished())
                    workflow.continue_as_new(request.model_copy(update={"state": self._rest(state, offset)}))
                await self._start(first + offset, request, run, state.existing.get(run.run_id))
            await workflow.wait_condition(lambda: self._in_flight == 0)
        except asyncio.CancelledError:
            # Started runs go on; nothing more starts.
            self._cancelled = True
        return self.progress()

    async def _plan(self, request: BackfillRequest) -> BackfillState:
        plan = await workflow.execute_activity(
            PLAN_BACKFILL_ACTIVITY, request, result_type=BackfillPlan, start_to_close_timeout=PLAN_TIMEOUT
        )
        return BackfillState(
            items=[BackfillItem(run_id=run.run_id, logical_date=run.logical_date) for run in plan.runs],
            remaining=plan.runs,
            max_active_runs=plan.max_active_runs,
            existing=plan.existing,
        )

    def _rest(self, state: BackfillState, offset: int) -> BackfillState:
        """What the next execution goes on from: every item as it stands, the runs from ``offset`` on."""
        remaining = state.remaining[offset:]
        return BackfillState(
            items=self._items,
            remaining=remaining,
            max_active_runs=state.max_active_runs,
            existing={run.run_id: state.existing[run.run_id] for run in remaining if run.run_id in state.existing},
        )

    @staticmethod
    def _history_is_long(request: BackfillRequest) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= request.options.history_events_per_workflow
        )

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
        run_request = start_request(request.dag_id, run, request.options)
        try:
            handle = await workflow.start_child_workflow(
                DAG_RUN_WORKFLOW,
                run_request,
                id=dag_run_workflow_id(request.dag_id, run.run_id),
                task_queue=workflow.info().task_queue,
                id_reuse_policy=reuse,
                parent_close_policy=ParentClosePolicy.ABANDON,
                result_type=DagRunResult,
                static_summary=run_request.summary(),
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
