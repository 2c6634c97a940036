"""The workflow that starts a DAG's scheduled runs: one per DAG, ``schedule:<dag_id>``, long-lived.

Why a workflow and not a Temporal Schedule: a Temporal Schedule fires on its own cron/interval
specs and cannot run Airflow's timetable code, so custom timetables, EventsTimetable, data
intervals, catchup's skip-to-latest and ``end_date`` would be re-implemented. Here Airflow's
timetable decides every run (an activity asks it, see ``activities/timetables.py``) and this
workflow only decides when to start each one and that it starts once:

- it sleeps on a durable timer until the run's ``run_after``, asks the timetable again when the
  timer fires (the DAG file may have changed; with catchup off Airflow skips to the latest
  interval), and starts the run as a child workflow ``dagrun:<dag_id>:<run_id>`` whose ID was
  never used: the start is recorded in this workflow's history in the same step that decides it,
  so no restart of a worker, the server or the machine can start an interval twice, and a run of
  that ID started by anyone else makes this start a duplicate, never a second run;
- runs start in order, and no more of its own runs are in flight than the DAG's
  ``max_active_runs`` (catchup creates missed intervals one slot at a time, not all at once);
- paused (``set_paused`` update), it starts nothing; explicit triggers are not its business;
- its whole state (last run, pause, runs in flight) is one :class:`ScheduleState`, carried
  through continue-as-new.
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
    from schemas.names import (
        DAG_CHANGED_SIGNAL,
        DAG_RUN_WORKFLOW,
        DAG_SCHEDULE_WORKFLOW,
        NEXT_SCHEDULED_RUN_ACTIVITY,
        RUN_STATES_ACTIVITY,
        SCHEDULE_STATUS_QUERY,
        SET_PAUSED_UPDATE,
    )
    from schemas.runs import DagRunRequest, DagRunResult, RunOptions
    from schemas.schedules import ScheduleAnswer, ScheduledRun, ScheduleQuery, ScheduleState, ScheduleStatus

# Parsing a large DAG file for the first time can take a while; the answer is recorded once.
TIMETABLE_TIMEOUT = timedelta(minutes=2)
RUN_STATES_TIMEOUT = timedelta(minutes=1)
# Runs inherited through continue-as-new are not children of this execution: while they hold
# every slot, look at them this often (children of this execution report their own end).
INHERITED_RUNS_CHECK = timedelta(seconds=30)


def start_request(dag_id: str, run: ScheduledRun, options: RunOptions) -> DagRunRequest:
    return DagRunRequest(
        dag_id=dag_id,
        run_id=run.run_id,
        run_type=run.run_type,
        logical_date=run.logical_date,
        data_interval=run.data_interval,
        run_after=run.run_after,
        options=options,
    )


@workflow.defn(name=DAG_SCHEDULE_WORKFLOW)
class DagScheduleWorkflow:
    def __init__(self) -> None:
        self._dag_id = ""
        self._options = RunOptions()
        self._paused: bool | None = None
        self._last: ScheduledRun | None = None
        self._in_flight: list[str] = []
        # Runs started by this execution, each followed until it ends (the others were inherited).
        self._children: dict[str, asyncio.Task[None]] = {}
        self._fingerprint: str | None = None
        self._runs_started = 0
        self._answer: ScheduleAnswer | None = None
        self._changed = False

    @workflow.run
    async def run(self, state: ScheduleState) -> None:
        self._dag_id = state.dag_id
        self._options = state.options
        self._paused = state.paused
        self._last = state.last
        self._in_flight = list(state.in_flight)
        self._fingerprint = state.fingerprint
        self._runs_started = state.runs_started
        if self._in_flight:
            await self._forget_ended_runs()
        while True:
            if self._history_is_long():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(self._state())
            answer = await self._ask_timetable()
            schedule = answer.schedule
            if schedule is None or answer.problem is not None:
                await self._wait()
                continue
            if self._paused is None:
                self._paused = schedule.is_paused_upon_creation
            if self._paused:
                await self._wait()
                continue
            run = schedule.next_run
            if run is None:
                await self._wait()
                continue
            # The timetable read the wall clock after this workflow task began: a run it gives for
            # "now" (catchup off on a delta schedule) is due, not one timer away.
            delay = run.run_after - max(workflow.now(), answer.as_of)
            if delay > timedelta(0):
                # Woken early by a change or pause, or by the timer: ask the timetable again.
                await self._wait(delay)
                continue
            if len(self._in_flight) >= schedule.max_active_runs:
                await self._wait_for_a_slot()
                continue
            await self._start(run)

    @workflow.signal(name=DAG_CHANGED_SIGNAL)
    def dag_changed(self, fingerprint: str | None) -> None:
        """The dags folder changed: wake up and ask the timetable again if the schedule differs."""
        if fingerprint is None or fingerprint != self._fingerprint:
            self._changed = True

    @workflow.update(name=SET_PAUSED_UPDATE)
    def set_paused(self, paused: bool) -> bool:
        """Pause or unpause; returns whether the schedule was paused before."""
        was_paused = bool(self._paused)
        self._paused = paused
        self._changed = True
        return was_paused

    @workflow.query(name=SCHEDULE_STATUS_QUERY)
    def status(self) -> ScheduleStatus:
        schedule = self._answer.schedule if self._answer else None
        return ScheduleStatus(
            dag_id=self._dag_id,
            paused=self._paused,
            present=schedule is not None and self._answer is not None and self._answer.problem is None,
            problem=self._answer.problem if self._answer else None,
            last_run_id=self._last.run_id if self._last else None,
            next_run=schedule.next_run if schedule else None,
            in_flight=list(self._in_flight),
            runs_started=self._runs_started,
        )

    async def _ask_timetable(self) -> ScheduleAnswer:
        answer: ScheduleAnswer = await workflow.execute_local_activity(
            NEXT_SCHEDULED_RUN_ACTIVITY,
            ScheduleQuery(dag_id=self._dag_id, last=self._last),
            result_type=ScheduleAnswer,
            start_to_close_timeout=TIMETABLE_TIMEOUT,
        )
        self._answer = answer
        self._fingerprint = answer.schedule.fingerprint if answer.schedule else None
        return answer

    async def _wait(self, timeout: timedelta | None = None) -> None:
        """Until a change (signal, update, a run's end) or ``timeout``."""
        self._changed = False
        with suppress(TimeoutError):
            await workflow.wait_condition(lambda: self._changed, timeout=timeout)

    async def _wait_for_a_slot(self) -> None:
        if all(run_id in self._children for run_id in self._in_flight):
            await self._wait()
            return
        await self._wait(INHERITED_RUNS_CHECK)
        await self._forget_ended_runs()

    async def _forget_ended_runs(self) -> None:
        inherited = [run_id for run_id in self._in_flight if run_id not in self._children]
        states = await workflow.execute_activity(
            RUN_STATES_ACTIVITY,
            args=[self._dag_id, inherited],
            result_type=dict[str, str],
            start_to_close_timeout=RUN_STATES_TIMEOUT,
        )
        ended = {run_id for run_id in inherited if states.get(run_id, "gone") != "running"}
        self._in_flight = [run_id for run_id in self._in_flight if run_id not in ended]

    async def _start(self, run: ScheduledRun) -> None:
        request = start_request(self._dag_id, run, self._options)
        try:
            handle = await workflow.start_child_workflow(
                DAG_RUN_WORKFLOW,
                request,
                id=dag_run_workflow_id(self._dag_id, run.run_id),
                task_queue=workflow.info().task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                # The run outlives this workflow's continue-as-new, pause or end.
                parent_close_policy=ParentClosePolicy.ABANDON,
                result_type=DagRunResult,
                static_summary=request.summary(),
            )
        except WorkflowAlreadyStartedError:
            workflow.logger.info("run %s of %s already exists: not started again", run.run_id, self._dag_id)
        else:
            self._in_flight.append(run.run_id)
            self._children[run.run_id] = asyncio.create_task(self._follow(run.run_id, handle))
            self._runs_started += 1
        self._last = run

    async def _follow(self, run_id: str, handle: workflow.ChildWorkflowHandle[object, DagRunResult]) -> None:
        # The run reports its own failure; here its end only frees its slot.
        with suppress(ChildWorkflowError):
            await handle
        self._in_flight.remove(run_id)
        del self._children[run_id]
        self._changed = True

    def _history_is_long(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= self._options.history_events_per_workflow
        )

    def _state(self) -> ScheduleState:
        return ScheduleState(
            dag_id=self._dag_id,
            options=self._options,
            paused=self._paused,
            last=self._last,
            in_flight=self._in_flight,
            fingerprint=self._fingerprint,
            runs_started=self._runs_started,
        )
