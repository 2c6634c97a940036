"""The asset-schedule workflow: one per DAG scheduled on assets, fed with asset events by signal.

It is Airflow's asset half of the scheduler for one DAG: it holds the DAG's queue
(``workflows.asset_queue``), evaluates the DAG's condition with Airflow's code whenever events
arrive or a run ends, and starts a run with the events it consumes, under a run ID derived from
those events (``dagrun:<dag_id>:asset_triggered__<run_after>_<digest>``). Its state is its
workflow history, so it survives any restart; every publisher of an event signals it with the
event's stable ID, so a repeated signal changes nothing.

Paused (``set_paused`` update, or ``is_paused_upon_creation`` read when the workflow starts), it
starts no run and its new events queue nothing, as Airflow's scheduler does with a paused DAG;
see ``workflows.asset_queue`` for what an unpause then brings.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError, WorkflowAlreadyStartedError
from temporalio.workflow import ChildWorkflowHandle, ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from airflow.configuration import conf as airflow_conf

    from schemas.assets import AssetScheduleInput, AssetScheduleStatus
    from schemas.errors import FailureType
    from schemas.ids import asset_triggered_run_id, dag_run_workflow_id
    from schemas.names import (
        ASSET_EVENTS_SIGNAL,
        ASSET_SCHEDULE_STATE_QUERY,
        ASSET_SCHEDULE_WORKFLOW,
        DAG_RUN_WORKFLOW,
        LOAD_SERIALIZED_DAG_ACTIVITY,
        SET_PAUSED_UPDATE,
    )
    from schemas.runs import AssetEventPayload, DagRunRequest, DagRunResult, RunType
    from workflows.asset_condition import asset_condition
    from workflows.asset_queue import AssetQueue

DEFAULT_MAX_ACTIVE_RUNS = airflow_conf.getint("core", "max_active_runs_per_dag")
LOAD_DAG_RETRY_POLICY = RetryPolicy(
    maximum_interval=timedelta(seconds=10), maximum_attempts=5, non_retryable_error_types=[FailureType.DAG_NOT_FOUND]
)


@workflow.defn(name=ASSET_SCHEDULE_WORKFLOW, sandboxed=False)
class AssetScheduleWorkflow:
    """Unsandboxed for the same reason as the DAG-run workflow: it runs Airflow's condition code."""

    @workflow.init
    def __init__(self, request: AssetScheduleInput) -> None:
        self._inbox: list[AssetEventPayload] = []
        # Built here, not in run(): a pause update can come before run() begins.
        self._queue = AssetQueue(request.state)
        self._active: dict[str, asyncio.Task[None]] = {}
        self._started: list[str] = []
        self._woken = False

    @workflow.signal(name=ASSET_EVENTS_SIGNAL)
    def asset_events(self, events: list[AssetEventPayload]) -> None:
        self._inbox.extend(events)

    @workflow.update(name=SET_PAUSED_UPDATE)
    def set_paused(self, paused: bool) -> bool:
        """Pause or unpause; returns whether the DAG was paused before."""
        was_paused = bool(self._queue.paused)
        self._queue.paused = paused
        self._woken = True
        return was_paused

    @workflow.query(name=ASSET_SCHEDULE_STATE_QUERY)
    def status(self) -> AssetScheduleStatus:
        queue = self._queue
        return AssetScheduleStatus(
            queued=queue.queued,
            pending_event_ids=[e.event_id or "" for e in queue.pending],
            active_run_ids=sorted(self._active),
            started_run_ids=list(self._started),
            paused=queue.paused,
        )

    @workflow.run
    async def run(self, request: AssetScheduleInput) -> None:
        queue = self._queue
        # Before any event is queued: a DAG paused upon creation queues none. Histories of
        # workflows started before pauses existed have no such load.
        if queue.paused is None and workflow.patched("asset-schedule-pause"):
            await self._load_dag(request.dag_id)
        while True:
            await workflow.wait_condition(lambda: bool(self._inbox) or self._woken)
            self._woken = False
            events, self._inbox = self._inbox, []
            queue.receive(events)
            await self._start_run_if_ready(request, queue)
            # Only with no run in flight: a run's end reaches this workflow, not the next one.
            if (
                workflow.info().is_continue_as_new_suggested()
                and not self._active
                and not self._inbox
                and workflow.all_handlers_finished()
            ):
                workflow.continue_as_new(request.model_copy(update={"state": queue.state()}))

    async def _start_run_if_ready(self, request: AssetScheduleInput, queue: AssetQueue) -> None:
        if queue.paused or not queue.queued:
            return
        serialized_dag = await self._load_dag(request.dag_id)
        if serialized_dag is None:
            return
        condition = asset_condition(serialized_dag)
        if condition is None:
            workflow.logger.warning("DAG %s is no longer scheduled on assets: its queue is dropped", request.dag_id)
            queue.forget_queue()
            return
        max_active_runs = serialized_dag["dag"].get("max_active_runs", DEFAULT_MAX_ACTIVE_RUNS)
        # As Airflow's scheduler: a DAG at max_active_runs gets no new run; its events wait.
        if len(self._active) >= max_active_runs or not queue.ready(condition):
            return
        events, run_after = queue.consume()
        run_id = asset_triggered_run_id(run_after.isoformat(), [e.event_id or "" for e in events])
        run = DagRunRequest(
            dag_id=request.dag_id,
            run_id=run_id,
            logical_date=None,
            run_type=RunType.ASSET_TRIGGERED,
            run_after=run_after,
            triggering_asset_events=events,
            options=request.options,
        )
        try:
            handle = await workflow.start_child_workflow(
                DAG_RUN_WORKFLOW,
                run,
                id=dag_run_workflow_id(request.dag_id, run_id),
                result_type=DagRunResult,
                static_summary=run.summary(),
                # The run is the DAG's, not this workflow's: it outlives a continue-as-new.
                parent_close_policy=ParentClosePolicy.ABANDON,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except WorkflowAlreadyStartedError:
            # Started before by whoever else used these events' run ID: never a second run.
            workflow.logger.info("run %s of DAG %s exists already", run_id, request.dag_id)
            return
        self._started.append(run_id)
        self._active[run_id] = asyncio.create_task(self._follow(run_id, handle))

    async def _follow(self, run_id: str, handle: ChildWorkflowHandle[object, DagRunResult]) -> None:
        try:
            await handle
        except ChildWorkflowError:
            pass
        finally:
            del self._active[run_id]
            self._woken = True

    async def _load_dag(self, dag_id: str) -> dict[str, Any] | None:
        """The DAG as the worker's dags folder has it now; ``None`` (and the queue kept) when it cannot be read.

        The first DAG read decides whether a workflow never paused or unpaused starts paused.
        """
        try:
            serialized: dict[str, Any] = await workflow.execute_local_activity(
                LOAD_SERIALIZED_DAG_ACTIVITY,
                dag_id,
                result_type=dict,
                start_to_close_timeout=timedelta(minutes=2),
                retry_policy=LOAD_DAG_RETRY_POLICY,
            )
        except ActivityError as err:
            cause = err.cause
            reason = cause.message if isinstance(cause, ApplicationError) else str(err)
            workflow.logger.warning("DAG %s cannot be loaded, its queued events wait: %s", dag_id, reason)
            return None
        if self._queue.paused is None:
            self._queue.paused = bool(serialized["dag"].get("is_paused_upon_creation"))
        return serialized
