"""The DAG-run workflow: Airflow decides what is ready, Temporal runs it durably."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from airflow.configuration import conf as airflow_conf
    from sqlalchemy.orm import Session

    from schemas import run_attributes
    from schemas.errors import FailureType
    from schemas.ids import parse_dag_run_workflow_id, run_event_id
    from schemas.limits import SlotChanges, SlotClaim, SlotGrant, SlotRelease
    from schemas.messages import RunEvent
    from schemas.names import (
        DAG_RUN_WORKFLOW,
        RUN_STATUS_QUERY,
        SLOTS_GRANTED_SIGNAL,
        TRIGGER_TEMPLATE_CONTEXT_QUERY,
        TRY_INPUTS_QUERY,
    )
    from schemas.runs import DagRunRequest, DagRunResult, RunSnapshot, TriggerTemplateContext, TryInputs
    from workflows import run_view
    from workflows.activity_calls import change_slots, load_serialized_dag, publish_run_event, run_callbacks
    from workflows.airflow_db import private_airflow_session
    from workflows.airflow_run import AirflowDagRun
    from workflows.deferral import Deferrals
    from workflows.result_batching import take_in_more_results
    from workflows.slots import RunSlots
    from workflows.stopping import RunStop, despite_cancellation
    from workflows.tries import RunningTries
    from workflows.try_requests import TryRequests, task_queue
    from workflows.xcom_store import XComStore

DEFAULT_MAX_ACTIVE_RUNS = airflow_conf.getint("core", "max_active_runs_per_dag")


@workflow.defn(name=DAG_RUN_WORKFLOW, sandboxed=False)
class DagRunWorkflow:
    """Runs one Airflow DAG run to completion.

    Unsandboxed: Airflow and SQLAlchemy cannot be re-imported into the sandbox per run at any
    reasonable cost. Determinism is instead guaranteed by construction (private database,
    workflow clock, ordered decisions) and checked by replaying every history the tests produce.
    """

    def __init__(self) -> None:
        self._slots = RunSlots(workflow.info().workflow_id)
        self._xcoms = XComStore()
        self._dag_run: AirflowDagRun | None = None
        # Set once the run exists in its private database.
        self._tries: RunningTries | None = None
        self._try_requests: TryRequests | None = None
        self._stop: RunStop | None = None
        self._deferrals = Deferrals()
        self._serialized_dag: dict[str, Any] | None = None
        self._grid = run_view.TaskGridView()

    @workflow.signal(name=SLOTS_GRANTED_SIGNAL)
    def slots_granted(self, grant: SlotGrant) -> None:
        self._slots.on_grant(grant)

    @workflow.query(name=TRY_INPUTS_QUERY)
    def try_inputs(self, task_id: str) -> TryInputs:
        """The conf and upstream XComs of a try whose inputs were too large to send with it."""
        assert self._try_requests is not None, "no try was handed out yet"
        return self._try_requests.inputs(task_id)

    @workflow.query(name=TRIGGER_TEMPLATE_CONTEXT_QUERY)
    def trigger_template_context(self) -> TriggerTemplateContext:
        """What a trigger of a task that starts from it renders its templated kwargs against."""
        assert self._dag_run is not None and self._serialized_dag is not None, "the run has not started yet"
        return TriggerTemplateContext(serialized_dag=self._serialized_dag, dag_run=self._dag_run.context())

    @workflow.query(name=RUN_STATUS_QUERY)
    def run_status(self) -> DagRunResult:
        """The run so far, as its result will list it: every task instance's state, try and dates."""
        dag_id, run_id = parse_dag_run_workflow_id(workflow.info().workflow_id) or ("", "")
        if self._dag_run is None:
            return DagRunResult(dag_id=dag_id, run_id=run_id, state=run_attributes.QUEUED)
        return self._dag_run.result()

    @workflow.run
    async def run(self, request: DagRunRequest) -> DagRunResult:
        """Run the DAG run, then publish its run event, also when it could not run at all."""
        info = workflow.info()
        self._slots.run_priority_weight = request.options.priority_weight
        try:
            result = await self._run(request)
        except FailureError as err:
            cause = err.cause if isinstance(err, ActivityError) and isinstance(err.cause, FailureError) else err
            run_view.mark_state(run_attributes.FAILED)
            run_view.show_run_failed(cause.message)
            await publish_run_event(
                RunEvent(
                    event_id=run_event_id(info.workflow_id),
                    dag_id=request.dag_id,
                    run_id=request.run_id,
                    run_type=request.run_type,
                    state="failed",
                    logical_date=request.logical_date,
                    start_date=info.start_time,
                    end_date=workflow.now(),
                    error=cause.message,
                )
            )
            raise
        run_view.mark_state(run_attributes.SUCCESS if result.state == "success" else run_attributes.FAILED)
        await publish_run_event(RunEvent.of_result(info.workflow_id, result, request))
        if self._stop is RunStop.CANCELLED:
            # Temporal then shows the run as Canceled; the run event carries its task instances.
            raise asyncio.CancelledError(result.error)
        return result

    async def _run(self, request: DagRunRequest) -> DagRunResult:
        serialized_dag = request.serialized_dag or await load_serialized_dag(request.dag_id)
        try:
            await self._wait_for_run_slot(request.dag_id, serialized_dag)
            run_view.mark_state(run_attributes.RUNNING)
            result = await self._run_in_private_db(request.model_copy(update={"serialized_dag": serialized_dag}))
        except (Exception, asyncio.CancelledError):
            # Failed or cancelled, the run ends here as well. The other BaseExceptions end nothing:
            # continue-as-new (the next workflow claims the same holders again and keeps their
            # slots), eviction, and GeneratorExit from the garbage collector closing a workflow
            # that a stopped worker left in its cache. That one is thrown on whatever thread
            # collects, and a release scheduled then would land in whichever workflow runs there.
            # A terminated run runs no code: the limits reclaim its slots themselves.
            await self._exchange_slots(self._slots.everything(), [])
            raise
        await self._exchange_slots(self._slots.everything(), [])
        return result

    async def _wait_for_run_slot(self, dag_id: str, serialized_dag: dict[str, Any]) -> None:
        """Runs beyond the DAG's max_active_runs wait here, Airflow's queued runs."""
        max_active_runs = serialized_dag["dag"].get("max_active_runs", DEFAULT_MAX_ACTIVE_RUNS)
        self._slots.claim_run_slot(dag_id, max_active_runs)
        await self._exchange_slots(*self._slots.changes())
        await workflow.wait_condition(lambda: self._slots.run_slot_held)

    async def _exchange_slots(self, release: list[SlotRelease], acquire: list[SlotClaim]) -> None:
        if not release and not acquire:
            return
        answers = await change_slots(
            SlotChanges(requester=workflow.info().workflow_id, release=release, acquire=acquire)
        )
        self._slots.on_refusals(answers.refusals)
        for grant in answers.grants:
            self._slots.on_grant(grant)

    async def _run_in_private_db(self, request: DagRunRequest) -> DagRunResult:
        """``request.serialized_dag`` is set."""
        resume = request.resume
        self._serialized_dag = request.serialized_dag
        with private_airflow_session(resume.database if resume else None) as session:
            dag_run = self._create(session, request) if resume is None else self._resume(session, request, resume)
            self._dag_run = dag_run
            self._tries = RunningTries(dag_run, self._xcoms, request.options)
            self._try_requests = TryRequests(dag_run, request.conf, self._xcoms)
            error = await self._drive(dag_run, request)
            run_view.show_task_grid(dag_run.state.value, dag_run.task_instance_states(), dag_run.graph.grid_order())
            if dag_run.dag_callback is not None:
                await run_callbacks(dag_run.dag_callback, request.options)
            return self._result(dag_run, error)

    def _resume(self, session: Session, request: DagRunRequest, resume: RunSnapshot) -> AirflowDagRun:
        """The run as the previous workflow of the same run handed it over."""
        assert request.serialized_dag is not None
        dag_run = AirflowDagRun.resume(
            session,
            serialized_dag=request.serialized_dag,
            run_id=request.run_id,
            per_pass=request.options.task_instances_per_pass,
        )
        self._xcoms = XComStore.from_snapshot(resume.xcoms)
        return dag_run

    def _create(self, session: Session, request: DagRunRequest) -> AirflowDagRun:
        """Raises a non-retryable ``ApplicationError`` when Airflow refuses the run."""
        assert request.serialized_dag is not None
        try:
            return AirflowDagRun.create(
                session,
                serialized_dag=request.serialized_dag,
                run_id=request.run_id,
                logical_date=request.logical_date,
                conf=request.conf,
                now=workflow.now(),
                per_pass=request.options.task_instances_per_pass,
                run_type=request.run_type,
                data_interval=request.data_interval,
                run_after=request.run_after,
                triggering_asset_events=request.triggering_asset_events,
            )
        except ValueError as err:
            raise ApplicationError(
                f"DAG run {request.dag_id}/{request.run_id} cannot start: {err}",
                type=FailureType.INVALID_DAG_RUN,
                non_retryable=True,
            ) from err

    def _continue_as_new(self, dag_run: AirflowDagRun, request: DagRunRequest) -> None:
        """Go on in a fresh workflow history, taking the run's database and XComs along.

        Only taken when no try is running: a try's result must reach the workflow that started it.
        """
        snapshot = RunSnapshot(database=dag_run.database_image(), xcoms=self._xcoms.snapshot())
        workflow.continue_as_new(request.model_copy(update={"resume": snapshot}))

    async def _drive(self, dag_run: AirflowDagRun, request: DagRunRequest) -> str | None:
        """Alternate between Airflow's decisions and the outcomes of the tries it asked for.

        When Temporal suggests a fresh history, no new try is handed out; once the running ones
        have reported, the run continues as new. Returns the run's error, if it ended with one.
        """
        tries = self._running_tries()
        deadline = dag_run.deadline
        if dag_run.size > request.options.task_instances_per_pass:
            # Creating or loading that many task instances was a workflow task's worth of work;
            # the first scheduling pass gets one of its own.
            try:
                await workflow.sleep(timedelta(milliseconds=1))
            except asyncio.CancelledError:
                return await self._stop_run(dag_run, RunStop.CANCELLED)
        while True:
            # Where Airflow's scheduler checks it too: before it schedules anything more.
            if deadline is not None and workflow.now() >= deadline:
                return await self._stop_run(dag_run, RunStop.TIMED_OUT)
            history_is_long = self._history_is_long(request)
            if history_is_long and tries.running == 0:
                # The next workflow claims the slots of waiting tasks again, not those of ended tries.
                await self._exchange_slots(self._slots.releases(), [])
                self._continue_as_new(dag_run, request)
            for trigger_end in self._deferrals.settle(dag_run.session, request, dag_run.dag):
                tries.end_from_trigger(trigger_end)
            if history_is_long:
                # Grants wait for the next workflow, which claims the same holders again.
                self._slots.has_news = False
            else:
                await self._hand_out_ready_tries(dag_run, request)
                if dag_run.finished:
                    return None
            waited = False
            if not tries.finished and not self._slots.has_news and not self._deferrals.has_news:
                ended = await self._wait_for_news(dag_run, deadline, history_is_long=history_is_long)
                if ended is not None:
                    return ended
                waited = True
            try:
                await take_in_more_results(tries, dag_run.size, waited=waited)
            except asyncio.CancelledError:
                return await self._stop_run(dag_run, RunStop.CANCELLED)
            self._record_finished_tries(dag_run)
            self._grid.show(dag_run.state.value, dag_run.size, dag_run.task_instance_states, dag_run.graph.grid_order)

    def _record_finished_tries(self, dag_run: AirflowDagRun) -> None:
        while (result := self._running_tries().take_finished()) is not None:
            dag_run.record(result)
            # A try its trigger ended gave its slots back when it deferred.
            if not self._deferrals.ended_by_trigger(result):
                self._slots.finish(result.task_id, result.map_index)

    def _history_is_long(self, request: DagRunRequest) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= request.options.history_events_per_workflow
        )

    async def _hand_out_ready_tries(self, dag_run: AirflowDagRun, request: DagRunRequest) -> None:
        """One scheduling pass, then a try for every scheduled task instance whose slots are held."""
        self._slots.admit(dag_run.schedule(), dag_run.dag)
        await self._exchange_slots(*self._slots.changes())
        self._slots.has_news = False
        ready = self._slots.startable()
        for task, _ in ready:
            dag_run.start(task)
        # One snapshot for everything handed out together: the run as Airflow's database
        # had it when these tries started (what their count and state queries see).
        task_instance_states = dag_run.task_instance_states() if ready else {}
        try_requests, tries = self._requests(), self._running_tries()
        for task, refusal in ready:
            resume_count = self._deferrals.resume_count(task.task_id, task.map_index, task.try_number)
            try_request = try_requests.request(task, task_instance_states, resume_count=resume_count)
            tries.start(try_request, task_queue(task, request.options), refusal)

    async def _wait_for_news(
        self, dag_run: AirflowDagRun, deadline: datetime | None, *, history_is_long: bool
    ) -> str | None:
        """Wait for a try's result, a slot grant, a wakeup or the deadline; the run's error if it ends."""
        tries = self._running_tries()
        wakeup = None if history_is_long else dag_run.next_wakeup()
        if (dag_run.scheduling_unfinished or self._deferrals.unfinished(dag_run.session)) and not history_is_long:
            # The pass left work for the next one, in a workflow task of its own.
            wakeup = workflow.now()
        if tries.running == 0 and wakeup is None and not self._slots.waiting and not self._deferrals.waiting:
            dag_run.fail(workflow.now())
            return "no task is running or waiting, yet the run is not finished"
        try:
            await self._wait_for_outcome_until(min((t for t in (wakeup, deadline) if t), default=None))
        except asyncio.CancelledError:
            return await self._stop_run(dag_run, RunStop.CANCELLED)
        return None

    async def _stop_run(self, dag_run: AirflowDagRun, stop: RunStop) -> str:
        """End the run now: Airflow's marking first, then every running try stopped and waited for."""
        self._stop = stop
        if stop is RunStop.CANCELLED:
            dag_run.mark_failed_by_user(workflow.now())
        else:
            dag_run.mark_timed_out(workflow.now())
        tries = self._running_tries()
        tries.cancel_all()
        self._deferrals.cancel()
        # Every try ends here, also one whose failure event is still being published.
        await despite_cancellation(tries.all_ended())
        return stop.error(dag_run.dag.dagrun_timeout)

    async def _wait_for_outcome_until(self, wakeup: datetime | None) -> None:
        tries = self._running_tries()
        timeout = None
        if wakeup is not None:
            timeout = max((wakeup - workflow.now()).total_seconds(), 0.001)
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: bool(tries.finished) or self._slots.has_news or self._deferrals.has_news,
                timeout=timeout,
                # What the UI labels the timer with (otherwise its sequence number).
                timeout_summary="wakeup for a retry, a reschedule or the run's timeout",
            )

    def _result(self, dag_run: AirflowDagRun, error: str | None) -> DagRunResult:
        result = dag_run.result(error)
        task_instances = [
            ti.model_copy(update={"xcom": self._xcoms.values(ti.task_id, ti.map_index)}) for ti in result.task_instances
        ]
        return result.model_copy(update={"task_instances": task_instances})

    def _running_tries(self) -> RunningTries:
        assert self._tries is not None, "the run is not in its private database yet"
        return self._tries

    def _requests(self) -> TryRequests:
        assert self._try_requests is not None, "the run is not in its private database yet"
        return self._try_requests
