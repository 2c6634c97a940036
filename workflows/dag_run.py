"""The DAG-run workflow: Airflow decides what is ready, Temporal runs it durably."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import zlib
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError
from temporalio.workflow import ActivityCancellationType, ActivityHandle

with workflow.unsafe.imports_passed_through():
    from airflow.callbacks.callback_requests import DagCallbackRequest, TaskCallbackRequest
    from airflow.configuration import conf as airflow_conf
    from pydantic import TypeAdapter
    from sqlalchemy.orm import Session

    from schemas.errors import NON_RETRYABLE_TRY_ERRORS, FailureType
    from schemas.ids import TryId, run_event_id
    from schemas.limits import SlotAnswers, SlotChanges, SlotClaim, SlotGrant, SlotRelease
    from schemas.messages import RunEvent, TaskEvent
    from schemas.names import (
        CHANGE_SLOTS_ACTIVITY,
        DAG_RUN_WORKFLOW,
        LOAD_SERIALIZED_DAG_ACTIVITY,
        PUBLISH_RUN_EVENT_ACTIVITY,
        PUBLISH_TASK_EVENT_ACTIVITY,
        RUN_CALLBACKS_ACTIVITY,
        RUN_TASK_TRY_ACTIVITY,
        SLOTS_GRANTED_SIGNAL,
        TRY_INPUTS_QUERY,
    )
    from schemas.runs import (
        DagRunRequest,
        DagRunResult,
        RunSnapshot,
        RunTaskInstance,
        TaskError,
        TaskState,
        TaskTryRequest,
        TaskTryResult,
        TryInputs,
        XComEntry,
    )
    from workflows.airflow_db import private_airflow_session
    from workflows.airflow_run import AirflowDagRun, ReadyTask
    from workflows.deferral import Deferrals
    from workflows.slots import RunSlots
    from workflows.stopping import RunStop, cancel_activities, despite_cancellation

AIRFLOW_DEFAULT_QUEUE = airflow_conf.get("operators", "default_queue")
DEFAULT_MAX_ACTIVE_RUNS = airflow_conf.getint("core", "max_active_runs_per_dag")

# Task failures come back as results and follow Airflow's own retry rules; Temporal only
# retries what never produced a result (a worker that died, a lost connection).
ACTIVITY_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=10,
    non_retryable_error_types=NON_RETRYABLE_TRY_ERRORS,
)

# An event must not be lost: publishing is retried for as long as Kafka stays away.
EVENT_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=0,
)
EVENT_PUBLISH_TIMEOUT = timedelta(seconds=30)

# A try's input is stored in history once per try: a conf and upstream XComs larger than this
# stay in the workflow and the activity reads them with a query.
INLINE_INPUTS_BYTES = 16 * 1024
LISTED_TASK_INSTANCES = 64

XCOM_LIST = TypeAdapter(list[XComEntry])

# What a scheduling pass costs per task instance of the run (about 0.1 s at 10,000 on the
# development machine); from this size on, results that arrive within one pass's cost share it.
PASS_COST_PER_TASK_INSTANCE = timedelta(microseconds=10)
BATCHED_RUN_SIZE = 1_000

# A callback that raises is caught and counted inside the activity: what fails the activity is a
# lost worker or a timeout (worth another attempt or two, not more: callbacks are user code) or a
# DAG the worker cannot load (worth none).
CALLBACK_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_attempts=3,
    non_retryable_error_types=NON_RETRYABLE_TRY_ERRORS,
)
# As long as Airflow's DAG processor, which runs these callbacks there, may work on one file.
CALLBACK_TIMEOUT = timedelta(seconds=airflow_conf.getint("dag_processor", "dag_file_processor_timeout"))
# Slots are given back even while the Temporal frontend is away: a lost release leaks a slot.
SLOT_CHANGES_RETRY_POLICY = RetryPolicy(maximum_interval=timedelta(seconds=10), maximum_attempts=0)


@workflow.defn(name=DAG_RUN_WORKFLOW, sandboxed=False)
class DagRunWorkflow:
    """Runs one Airflow DAG run to completion.

    Unsandboxed: Airflow and SQLAlchemy cannot be re-imported into the sandbox per run at any
    reasonable cost. Determinism is instead guaranteed by construction (private database,
    workflow clock, ordered decisions) and checked by replaying every history the tests produce.
    """

    def __init__(self) -> None:
        self._finished_tries: list[TaskTryResult] = []
        self._running: int = 0
        self._xcoms: dict[str, dict[int, list[XComEntry]]] = {}
        self._xcom_bytes: dict[str, int] = {}
        self._dag_run: AirflowDagRun | None = None
        self._conf: dict = {}
        self._conf_bytes = 0
        self._try_activities: set[ActivityHandle] = set()
        self._stop: RunStop | None = None
        self._slots = RunSlots(workflow.info().workflow_id)
        self._deferrals = Deferrals()
        self._ended_in_trigger: set[tuple[str, int]] = set()

    @workflow.signal(name=SLOTS_GRANTED_SIGNAL)
    def slots_granted(self, grant: SlotGrant) -> None:
        self._slots.on_grant(grant)

    @workflow.query(name=TRY_INPUTS_QUERY)
    def try_inputs(self, task_id: str) -> TryInputs:
        """The conf and upstream XComs of a try whose inputs were too large to send with it."""
        assert self._dag_run is not None, "no try was handed out yet"
        return TryInputs(conf=self._conf, upstream_xcoms=self._upstream_xcoms(self._dag_run, task_id))

    @workflow.run
    async def run(self, request: DagRunRequest) -> DagRunResult:
        """Run the DAG run, then publish its run event, also when it could not run at all."""
        info = workflow.info()
        try:
            result = await self._run(request)
        except FailureError as err:
            cause = err.cause if isinstance(err, ActivityError) and err.cause is not None else err
            await self._publish_run_event(
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
        await self._publish_run_event(RunEvent.of_result(info.workflow_id, result, request))
        if self._stop is RunStop.CANCELLED:
            # Temporal then shows the run as Canceled; the run event carries its task instances.
            raise asyncio.CancelledError(result.error)
        return result

    async def _publish_run_event(self, event: RunEvent) -> None:
        await despite_cancellation(
            workflow.execute_activity(
                PUBLISH_RUN_EVENT_ACTIVITY,
                event,
                start_to_close_timeout=EVENT_PUBLISH_TIMEOUT,
                retry_policy=EVENT_RETRY_POLICY,
            )
        )

    async def _run(self, request: DagRunRequest) -> DagRunResult:
        serialized_dag = request.serialized_dag or await self._load_dag(request.dag_id)
        try:
            await self._wait_for_run_slot(request.dag_id, serialized_dag)
            result = await self._run_in_private_db(request, serialized_dag)
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

    async def _wait_for_run_slot(self, dag_id: str, serialized_dag: dict) -> None:
        """Runs beyond the DAG's max_active_runs wait here, Airflow's queued runs."""
        max_active_runs = serialized_dag["dag"].get("max_active_runs", DEFAULT_MAX_ACTIVE_RUNS)
        self._slots.claim_run_slot(dag_id, max_active_runs)
        await self._exchange_slots(*self._slots.changes())
        await workflow.wait_condition(lambda: self._slots.run_slot_held)

    async def _exchange_slots(self, release: list[SlotRelease], acquire: list[SlotClaim]) -> None:
        if not release and not acquire:
            return
        # Local: the exchange is on the path between a try's end and the next try's start, and a
        # local activity saves the round trips through the server's activity queue.
        answers = await workflow.execute_local_activity(
            CHANGE_SLOTS_ACTIVITY,
            SlotChanges(requester=workflow.info().workflow_id, release=release, acquire=acquire),
            result_type=SlotAnswers,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=SLOT_CHANGES_RETRY_POLICY,
        )
        self._slots.on_refusals(answers.refusals)
        for grant in answers.grants:
            self._slots.on_grant(grant)

    async def _run_in_private_db(self, request: DagRunRequest, serialized_dag: dict) -> DagRunResult:
        resume = request.resume
        with private_airflow_session(resume.database if resume else None) as session:
            if resume is not None:
                dag_run = AirflowDagRun.resume(
                    session,
                    serialized_dag=serialized_dag,
                    run_id=request.run_id,
                    per_pass=request.options.task_instances_per_pass,
                )
                for entry in XCOM_LIST.validate_json(zlib.decompress(resume.xcoms)):
                    self._store_xcom(entry)
            else:
                dag_run = self._create(session, serialized_dag, request)
            self._dag_run = dag_run
            self._conf = request.conf
            self._conf_bytes = len(json.dumps(request.conf))
            error = await self._drive(dag_run, request.model_copy(update={"serialized_dag": serialized_dag}))
            if dag_run.dag_callback is not None:
                await self._run_callbacks(dag_run.dag_callback, request)
            return self._result(dag_run, error)

    def _create(self, session: Session, serialized_dag: dict, request: DagRunRequest) -> AirflowDagRun:
        try:
            return AirflowDagRun.create(
                session,
                serialized_dag=serialized_dag,
                run_id=request.run_id,
                logical_date=request.logical_date,
                conf=request.conf,
                now=workflow.now(),
                per_pass=request.options.task_instances_per_pass,
                run_type=request.run_type,
                data_interval=request.data_interval,
                run_after=request.run_after,
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
        xcoms = [
            entry for by_map_index in self._xcoms.values() for entries in by_map_index.values() for entry in entries
        ]
        snapshot = RunSnapshot(
            database=dag_run.database_image(),
            xcoms=zlib.compress(XCOM_LIST.dump_json(xcoms)),
        )
        workflow.continue_as_new(request.model_copy(update={"resume": snapshot}))

    async def _run_callbacks(self, callback: DagCallbackRequest | TaskCallbackRequest, request: DagRunRequest) -> None:
        """Run Airflow callbacks; like Airflow, whatever happens to them leaves the outcome as it is."""
        try:
            await workflow.execute_activity(
                RUN_CALLBACKS_ACTIVITY,
                callback,
                result_type=list[str],
                task_queue=request.options.default_task_queue,
                start_to_close_timeout=CALLBACK_TIMEOUT,
                heartbeat_timeout=timedelta(seconds=request.options.task_heartbeat_timeout_seconds),
                retry_policy=CALLBACK_RETRY_POLICY,
            )
        except ActivityError as err:
            workflow.logger.warning("%s did not run: %s", callback.type, err.cause or err)

    async def _load_dag(self, dag_id: str) -> dict:
        try:
            # Local: the worker that runs this workflow has the dags folder, so the DAG is read
            # without a round trip through the server, and the result is still in history.
            return await workflow.execute_local_activity(
                LOAD_SERIALIZED_DAG_ACTIVITY,
                dag_id,
                result_type=dict,
                start_to_close_timeout=timedelta(minutes=2),
                retry_policy=ACTIVITY_RETRY_POLICY,
            )
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type == FailureType.DAG_NOT_FOUND:
                raise ApplicationError(cause.message, type=FailureType.DAG_NOT_FOUND, non_retryable=True) from err
            raise

    async def _drive(self, dag_run: AirflowDagRun, request: DagRunRequest) -> str | None:
        """Alternate between Airflow's decisions and the outcomes of the tries it asked for.

        When Temporal suggests a fresh history, no new try is handed out; once the running ones
        have reported, the run continues as new.
        """
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
            info = workflow.info()
            history_is_long = (
                info.is_continue_as_new_suggested()
                or info.get_current_history_length() >= request.options.history_events_per_workflow
            )
            if history_is_long and self._running == 0:
                # The next workflow claims the slots of waiting tasks again, not those of ended tries.
                await self._exchange_slots(self._slots.releases(), [])
                self._continue_as_new(dag_run, request)
            for ended in self._deferrals.settle(
                dag_run.session, dag_run.deferred_task_instances(), request.dag_id, request.run_id, request.options
            ):
                self._running += 1
                self._ended_in_trigger.add((ended.task_id, ended.map_index))
                asyncio.create_task(self._end_from_trigger(ended, request))
            if history_is_long:
                # Grants wait for the next workflow, which claims the same holders again.
                self._slots.has_news = False
            else:
                self._slots.admit(dag_run.schedule(), dag_run.dag)
                await self._exchange_slots(*self._slots.changes())
                self._slots.has_news = False
                ready = self._slots.startable()
                for task, _ in ready:
                    dag_run.start(task)
                # One snapshot for everything handed out together: the run as Airflow's database
                # had it when these tries started (what their count and state queries see).
                task_instance_states = dag_run.task_instance_states() if ready else {}
                for task, refusal in ready:
                    self._start_try(dag_run, task, request, task_instance_states, refusal)
                if dag_run.finished:
                    return None
            if not self._finished_tries and not self._slots.has_news and not self._deferrals.has_news:
                wakeup = None if history_is_long else dag_run.next_wakeup()
                if dag_run.scheduling_unfinished and not history_is_long:
                    # The pass left work for the next one, in a workflow task of its own.
                    wakeup = workflow.now()
                if self._running == 0 and wakeup is None and not self._slots.waiting and not self._deferrals.waiting:
                    dag_run.fail(workflow.now())
                    return "no task is running or waiting, yet the run is not finished"
                try:
                    await self._wait_for_outcome_until(min((t for t in (wakeup, deadline) if t), default=None))
                    await self._take_in_more_results(dag_run)
                except asyncio.CancelledError:
                    return await self._stop_run(dag_run, RunStop.CANCELLED)
            while self._finished_tries:
                result = self._finished_tries.pop(0)
                dag_run.record(result)
                if (result.task_id, result.map_index) in self._ended_in_trigger:
                    # Its slots went back when it deferred.
                    self._ended_in_trigger.remove((result.task_id, result.map_index))
                else:
                    self._slots.finish(result.task_id, result.map_index)

    async def _stop_run(self, dag_run: AirflowDagRun, stop: RunStop) -> str:
        """End the run now: Airflow's marking first, then every running try stopped and waited for."""
        self._stop = stop
        if stop is RunStop.CANCELLED:
            dag_run.mark_failed_by_user(workflow.now())
        else:
            dag_run.mark_timed_out(workflow.now())
        cancel_activities(self._try_activities)
        self._deferrals.cancel()
        # Every try ends here, also one whose failure event is still being published.
        await despite_cancellation(workflow.wait_condition(lambda: self._running == 0))
        return stop.error(dag_run.dag.dagrun_timeout)

    async def _take_in_more_results(self, dag_run: AirflowDagRun) -> None:
        """In a large run, give the other running tries a moment to report too.

        A scheduling pass costs about as much as the run has task instances, and results taken
        in together share one pass: waiting at most as long as a pass costs at most doubles a
        result's wait, and divides the number of passes by the results that arrive meanwhile.
        """
        if dag_run.size < BATCHED_RUN_SIZE or not self._finished_tries or self._running == 0:
            return
        try:
            await workflow.wait_condition(
                lambda: self._running == 0, timeout=dag_run.size * PASS_COST_PER_TASK_INSTANCE
            )
        except TimeoutError:
            pass

    async def _wait_for_outcome_until(self, wakeup: datetime | None) -> None:
        timeout = None
        if wakeup is not None:
            timeout = max((wakeup - workflow.now()).total_seconds(), 0.001)
        try:
            await workflow.wait_condition(
                lambda: bool(self._finished_tries) or self._slots.has_news or self._deferrals.has_news, timeout=timeout
            )
        except TimeoutError:
            pass

    def _start_try(
        self,
        dag_run: AirflowDagRun,
        task: ReadyTask,
        request: DagRunRequest,
        task_instance_states: dict[str, list[tuple[int, str | None]]],
        refusal: str | None,
    ) -> None:
        upstream_xcoms = self._upstream_xcoms(dag_run, task.task_id)
        if task.next_method is not None:
            # A resumed deferral still sees what its try pushed before deferring, as in Airflow.
            upstream_xcoms += self._xcoms.get(task.task_id, {}).get(task.map_index, [])
        upstream_bytes = sum(self._xcom_bytes[task_id] for task_id in {entry.task_id for entry in upstream_xcoms})
        inline = self._conf_bytes + upstream_bytes <= INLINE_INPUTS_BYTES
        context = dag_run.context()
        # A task sees the task instances of its own task and of its direct upstream tasks. Those
        # of a task mapped very wide are counted, not listed, or every try's input would grow
        # with the width; of its own task it still sees itself.
        seen = {task.task_id: task_instance_states.get(task.task_id, [])} | {
            task_id: task_instance_states.get(task_id, []) for task_id in dag_run.direct_upstream_task_ids(task.task_id)
        }
        # A task still being expanded counts as wide as it will be, as Airflow would count it.
        counts = {
            task_id: dag_run.expanding_lengths.get(task_id, len(instances)) for task_id, instances in seen.items()
        }
        listed = [
            RunTaskInstance(task_id=task_id, map_index=map_index, state=state)
            for task_id, instances in sorted(seen.items())
            for map_index, state in instances
            if counts[task_id] <= LISTED_TASK_INSTANCES or (task_id, map_index) == (task.task_id, task.map_index)
        ]
        try_request = TaskTryRequest(
            dag_run=context if inline else context.model_copy(update={"conf": {}}),
            task_id=task.task_id,
            map_index=task.map_index,
            try_number=task.try_number,
            max_tries=task.max_tries,
            upstream_xcoms=upstream_xcoms if inline else [],
            inputs_held_by_workflow=not inline,
            run_task_instances=listed,
            task_instance_counts=counts,
            reschedule_count=task.reschedule_count,
            first_reschedule_start_date=task.first_reschedule_start_date,
            next_method=task.next_method,
            next_kwargs=task.next_kwargs,
            resume_count=self._deferrals.resume_count(task.task_id, task.map_index, task.try_number),
        )
        queue = request.options.default_task_queue if task.queue == AIRFLOW_DEFAULT_QUEUE else task.queue
        self._running += 1
        asyncio.create_task(self._run_try(dag_run, try_request, queue, request, refusal))

    def _upstream_xcoms(self, dag_run: AirflowDagRun, task_id: str) -> list[XComEntry]:
        """The XComs a task may pull: those of every task it transitively depends on."""
        upstream = dag_run.upstream_task_ids(task_id)
        return [
            entry
            for upstream_id in sorted(upstream.intersection(self._xcoms))
            for _, entries in sorted(self._xcoms[upstream_id].items())
            for entry in entries
        ]

    async def _run_try(
        self,
        dag_run: AirflowDagRun,
        try_request: TaskTryRequest,
        queue: str,
        request: DagRunRequest,
        refusal: str | None,
    ) -> None:
        started = workflow.now()
        if refusal is not None:
            # Retrying cannot help: the pool is missing or too small on this deployment.
            error = TaskError(type=FailureType.POOL_UNAVAILABLE, message=refusal)
            result = await self._try_without_result(try_request, started, error, retry=False)
        else:
            result = await self._run_activity(dag_run, try_request, queue, request, started)
            if result is None:
                # The run stopped this try; Airflow's marking already decided its task instance.
                self._running -= 1
                return
        self._store_xcoms(result)
        self._running -= 1
        self._finished_tries.append(result)

    async def _run_activity(
        self, dag_run: AirflowDagRun, try_request: TaskTryRequest, queue: str, request: DagRunRequest, started: datetime
    ) -> TaskTryResult | None:
        options = request.options
        activity = workflow.start_activity(
            RUN_TASK_TRY_ACTIVITY,
            try_request,
            result_type=TaskTryResult,
            activity_id=_activity_id(try_request),
            task_queue=queue,
            start_to_close_timeout=timedelta(seconds=options.task_start_to_close_timeout_seconds),
            heartbeat_timeout=timedelta(seconds=options.task_heartbeat_timeout_seconds),
            retry_policy=dataclasses.replace(ACTIVITY_RETRY_POLICY, maximum_attempts=options.task_attempts),
            # A stopped run waits until its tasks are really dead, not just asked to die.
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        self._try_activities.add(activity)
        activity.add_done_callback(self._try_activities.discard)
        try:
            return await activity
        except ActivityError as err:
            if self._stop is not None:
                return None
            cause = err.cause or err
            error = TaskError(type=type(cause).__name__, message=str(cause))
            retry = try_request.try_number <= try_request.max_tries
            result = await self._try_without_result(try_request, started, error, retry=retry)
            # Nor did its runner reach the try's retry or failure callback.
            if (callback := dag_run.unreported_failure_callback(result)) is not None:
                await self._run_callbacks(callback, request)
            return result

    async def _end_from_trigger(self, result: TaskTryResult, request: DagRunRequest) -> None:
        """A trigger ended its task itself (``end_from_trigger``): no activity ran the end, so this publishes it."""
        event = TaskEvent.of_result(workflow.info().workflow_id, request.dag_id, request.run_id, result)
        await workflow.execute_activity(
            PUBLISH_TASK_EVENT_ACTIVITY,
            event,
            start_to_close_timeout=EVENT_PUBLISH_TIMEOUT,
            retry_policy=EVENT_RETRY_POLICY,
        )
        self._store_xcoms(result)
        self._running -= 1
        self._finished_tries.append(result)

    async def _try_without_result(
        self, try_request: TaskTryRequest, started: datetime, error: TaskError, *, retry: bool
    ) -> TaskTryResult:
        result = TaskTryResult(
            task_id=try_request.task_id,
            map_index=try_request.map_index,
            try_number=try_request.try_number,
            state=TaskState.UP_FOR_RETRY if retry else TaskState.FAILED,
            start_date=started,
            end_date=workflow.now(),
            error=error,
        )
        # No activity returned a result, so none published this try's event.
        await workflow.execute_activity(
            PUBLISH_TASK_EVENT_ACTIVITY,
            TaskEvent.of_try(workflow.info().workflow_id, try_request, result),
            start_to_close_timeout=EVENT_PUBLISH_TIMEOUT,
            retry_policy=EVENT_RETRY_POLICY,
        )
        return result

    def _store_xcoms(self, result: TaskTryResult) -> None:
        """Keep a try's XComs (a later try of the same task instance replaces them) and their size."""
        by_map_index = self._xcoms.setdefault(result.task_id, {})
        replaced = by_map_index.pop(result.map_index, [])
        if result.xcoms:
            by_map_index[result.map_index] = list(result.xcoms)
        elif not by_map_index:
            del self._xcoms[result.task_id]
        self._xcom_bytes[result.task_id] = (
            self._xcom_bytes.get(result.task_id, 0) - _size(replaced) + _size(result.xcoms)
        )

    def _store_xcom(self, entry: XComEntry) -> None:
        self._xcoms.setdefault(entry.task_id, {}).setdefault(entry.map_index, []).append(entry)
        self._xcom_bytes[entry.task_id] = self._xcom_bytes.get(entry.task_id, 0) + _size([entry])

    def _result(self, dag_run: AirflowDagRun, error: str | None) -> DagRunResult:
        result = dag_run.result(error)
        return result.model_copy(
            update={
                "task_instances": [
                    ti.model_copy(
                        update={
                            "xcom": {
                                entry.key: entry.value
                                for entry in self._xcoms.get(ti.task_id, {}).get(ti.map_index, [])
                            }
                        }
                    )
                    for ti in result.task_instances
                ]
            }
        )


def _size(entries: list[XComEntry]) -> int:
    return sum(len(json.dumps(entry.value)) for entry in entries)


def _activity_id(try_request: TaskTryRequest) -> str:
    """Unique per poke: a rescheduled sensor pokes again under the same try number."""
    return TryId(
        try_request.task_id,
        try_request.map_index,
        try_request.try_number,
        try_request.reschedule_count,
        try_request.resume_count,
    ).activity_id()
