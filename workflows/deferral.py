"""Deferred task instances of a DAG run: recorded as Airflow records them, woken as its triggerer would.

A try that raises ``TaskDeferred`` comes back as ``deferred`` with the trigger; the run's private
database then holds what Airflow's execution API writes (a trigger row, ``next_method``,
``next_kwargs``, ``trigger_timeout``). While the task instance waits, no task process is held:

- a time trigger (``DateTimeTrigger``, which ``TimeDeltaTrigger`` serializes to) is a durable
  Temporal timer in this workflow, no activity at all;
- any other trigger runs in a ``run_trigger`` activity on the worker's triggerer (async, one
  coroutine per trigger), retried on another worker if the one running it dies.

The first event resumes the task instance exactly as Airflow's ``handle_event_submit`` does
(scheduled again, same try, ``next_kwargs["event"]`` = the payload); a trigger that raises or
times out schedules it with ``next_method="__fail__"`` as Airflow's triggerer and scheduler do, so
the task's own runner fails it (or retries it) with ``TaskDeferralError``/``TaskDeferralTimeout``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import TRIGGER_FAIL_REPR, Trigger, TriggerFailureReason, handle_event_submit
    from airflow.sdk.serde import deserialize, serialize
    from airflow.serialization.definitions.dag import SerializedDAG
    from airflow.triggers.base import TriggerEvent
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import ColumnElement, and_, select, tuple_
    from sqlalchemy.orm import Session

    from schemas.runs import (
        DagRunRequest,
        RunOptions,
        TaskState,
        TaskTryResult,
        TriggerOutcome,
        TriggerRequest,
        XComEntry,
    )
    from workflows.activity_calls import start_trigger
    from workflows.try_requests import temporal_queue

# The trigger that DateTimeSensor, TimeDeltaSensor and WaitSensor defer to (TimeDeltaTrigger
# serializes to it): it yields its moment once the moment has passed, which a timer does.
DATETIME_TRIGGER = "airflow.providers.standard.triggers.temporal.DateTimeTrigger"

Key = tuple[str, int]


@dataclass(frozen=True)
class _Waiting:
    """A deferred task instance's wait, as the run's database describes it."""

    key: Key
    try_number: int
    classpath: str
    trigger_kwargs: dict[str, Any]
    timeout_at: datetime | None
    queue: str
    # The task starts from its trigger: the triggerer renders the trigger's templated kwargs.
    start_from_trigger: bool


class Deferrals:
    """The deferred task instances of one run, each waiting for its trigger.

    A pass settles at most ``task_instances_per_pass`` trigger outcomes and starts at most as
    many waits: after a continue-as-new, or when a thousand triggers fire at once, the rest
    waits for the next workflow task (``unfinished``), so no workflow task nears the SDK's
    deadlock detection.
    """

    def __init__(self) -> None:
        self._waiters: dict[Key, asyncio.Task[None]] = {}
        self._outcomes: deque[tuple[_Waiting, TriggerOutcome | None]] = deque()
        # An outcome arrived since the last pass.
        self._news = False
        # The last pass found deferred task instances it had no room to start waiting for.
        self._unstarted = False
        # The run, as the last pass was given it.
        self._run: DagRunRequest | None = None
        # Deferrals of each try so far: a resumed try's activity, and its next trigger's, get new IDs.
        self._deferrals: dict[tuple[str, int, int], int] = {}
        # Tries a trigger ended itself, not yet recorded by the run: they hold no slots.
        self._ended: set[Key] = set()

    @property
    def has_news(self) -> bool:
        """A trigger fired, failed or timed out since the last pass: a task instance may be scheduled again."""
        return self._news

    def unfinished(self, session: Session) -> bool:
        """Outcomes to apply or deferred task instances to wait for are left to the next pass: the last
        one had no room for them, or the scheduling pass after it deferred tasks that start from their
        triggers."""
        if self._outcomes or self._unstarted:
            return True
        return self._run is not None and any(key not in self._waiters for key in _deferred_keys(session, self._run))

    @property
    def waiting(self) -> bool:
        return bool(self._waiters)

    def resume_count(self, task_id: str, map_index: int, try_number: int) -> int:
        return self._deferrals.get((task_id, map_index, try_number), 0)

    def ended_by_trigger(self, result: TaskTryResult) -> bool:
        """Whether a trigger ended this try (it gave its slots back when it deferred); asked once per result."""
        key = (result.task_id, result.map_index)
        if key not in self._ended:
            return False
        self._ended.remove(key)
        return True

    def settle(self, session: Session, request: DagRunRequest, dag: SerializedDAG) -> list[TaskTryResult]:
        """Apply what triggers produced, and start waiting for the run's deferred task instances not yet waited
        for (those of an earlier workflow of the run too, after continue-as-new).

        Returns the tries that a trigger ended itself (``end_from_trigger``), for the workflow to
        record like any other ended try.
        """
        per_pass = request.options.task_instances_per_pass
        self._run = request
        self._news = False
        outcomes = [self._outcomes.popleft() for _ in range(min(per_pass, len(self._outcomes)))]
        deferred = _deferred_task_instances(session, request, [waiting.key for waiting, _ in outcomes])
        ended = [
            result
            for waiting, outcome in outcomes
            if (result := self._apply(session, deferred.get(waiting.key), waiting, outcome)) is not None
        ]
        session.flush()
        self._ended.update((result.task_id, result.map_index) for result in ended)
        # The outcomes applied above may have ended some deferrals; the others are still deferred.
        new = [key for key in _deferred_keys(session, request) if key not in self._waiters]
        self._unstarted = len(new) > per_pass
        for waiting in _waits(session, request, dag, new[:per_pass]):
            self._waiters[waiting.key] = asyncio.create_task(
                self._wait(waiting, request.dag_id, request.run_id, request.options)
            )
        return ended

    def cancel(self) -> None:
        """The run stopped: its triggers are cancelled (their on_kill runs), timers dropped."""
        for waiter in self._waiters.values():
            waiter.cancel()
        self._waiters.clear()

    async def _wait(self, waiting: _Waiting, dag_id: str, run_id: str, options: RunOptions) -> None:
        try_key = (*waiting.key, waiting.try_number)
        number = self._deferrals.get(try_key, 0)
        moment = _moment(waiting)
        if moment is not None:
            outcome: TriggerOutcome | None = await self._time_trigger(waiting, moment)
        else:
            request = TriggerRequest(
                dag_id=dag_id,
                run_id=run_id,
                task_id=waiting.key[0],
                map_index=waiting.key[1],
                try_number=waiting.try_number,
                classpath=waiting.classpath,
                trigger_kwargs=waiting.trigger_kwargs,
                timeout_after=waiting.timeout_at,
                start_from_trigger=waiting.start_from_trigger,
            )
            outcome = await self._trigger_activity(waiting, request, number, options)
        self._deferrals[try_key] = number + 1
        del self._waiters[waiting.key]
        self._outcomes.append((waiting, outcome))
        self._news = True

    async def _time_trigger(self, waiting: _Waiting, moment: datetime) -> TriggerOutcome | None:
        if waiting.timeout_at is not None and waiting.timeout_at < moment:
            await _sleep_until(waiting.timeout_at)
            return None
        await _sleep_until(moment)
        if _kwargs(waiting).get("end_from_trigger"):
            return TriggerOutcome(end_state=TaskInstanceState.SUCCESS.value)
        return TriggerOutcome(payload=serialize(moment))

    async def _trigger_activity(
        self, waiting: _Waiting, request: TriggerRequest, number: int, options: RunOptions
    ) -> TriggerOutcome | None:
        """The trigger's first event; ``None`` when the trigger timeout passed first."""
        handle = start_trigger(request, number, temporal_queue(waiting.queue, options), options)
        timeout = None
        if waiting.timeout_at is not None:
            timeout = max((waiting.timeout_at - workflow.now()).total_seconds(), 0.001)
        try:
            done, _ = await asyncio.wait({handle}, timeout=timeout)
            if not done:
                handle.cancel()
                return None
            return handle.result()
        except asyncio.CancelledError:
            handle.cancel()
            raise
        except ActivityError as err:
            cause = err.cause or err
            return TriggerOutcome(traceback=[f"{type(cause).__name__}: {cause}"])

    def _apply(
        self, session: Session, ti: TaskInstance | None, waiting: _Waiting, outcome: TriggerOutcome | None
    ) -> TaskTryResult | None:
        """``ti``: the task instance if it is still deferred."""
        if ti is None or ti.try_number != waiting.try_number:
            # The run was marked failed (or the task instance cleared) while the trigger waited.
            return None
        if outcome is None:
            # Airflow's scheduler (check_trigger_timeouts): the task's runner raises TaskDeferralTimeout.
            _schedule_failure(ti, {"error": TriggerFailureReason.TRIGGER_TIMEOUT.value})
        elif outcome.traceback is not None:
            # Airflow's Trigger.submit_failure: the runner raises TaskDeferralError with the traceback.
            _schedule_failure(ti, {"error": TriggerFailureReason.TRIGGER_FAILURE.value, "traceback": outcome.traceback})
        elif outcome.end_state is not None:
            now = workflow.now()
            ti.trigger_id = None
            return TaskTryResult(
                task_id=ti.task_id,
                map_index=ti.map_index,
                try_number=ti.try_number,
                state=TaskState(outcome.end_state),
                start_date=ti.start_date or now,
                end_date=now,
                xcoms=[
                    XComEntry(task_id=ti.task_id, map_index=ti.map_index, key=key, value=value)
                    for key, value in outcome.end_xcoms.items()
                ],
            )
        else:
            # TriggerEvent's __init__ is unannotated in Airflow 3.3.
            event = TriggerEvent(deserialize(outcome.payload))  # type: ignore[no-untyped-call]
            handle_event_submit(event, task_instance=ti, session=session)
        return None


def _deferred_task_instances(session: Session, request: DagRunRequest, keys: list[Key]) -> dict[Key, TaskInstance]:
    """The run's task instances still deferred among ``keys``, in one query."""
    if not keys:
        return {}
    query = select(TaskInstance).where(
        _of_run(request),
        TaskInstance.state == TaskInstanceState.DEFERRED,
        tuple_(TaskInstance.task_id, TaskInstance.map_index).in_(keys),
    )
    return {(ti.task_id, ti.map_index): ti for ti in session.scalars(query)}


def _deferred_keys(session: Session, request: DagRunRequest) -> list[Key]:
    """Which of the run's task instances are deferred, in (task_id, map_index) order: columns, no objects."""
    query = (
        select(TaskInstance.task_id, TaskInstance.map_index)
        .where(_of_run(request), TaskInstance.state == TaskInstanceState.DEFERRED, TaskInstance.trigger_id.is_not(None))
        # Waits start in this order: decisions must not depend on row order.
        .order_by(TaskInstance.task_id, TaskInstance.map_index)
    )
    return [(task_id, map_index) for task_id, map_index in session.execute(query)]


def _waits(session: Session, request: DagRunRequest, dag: SerializedDAG, keys: list[Key]) -> list[_Waiting]:
    """The waits of these deferred task instances, as their trigger rows describe them, in one query."""
    if not keys:
        return []
    query = (
        select(
            TaskInstance.task_id,
            TaskInstance.map_index,
            TaskInstance.try_number,
            TaskInstance.queue,
            TaskInstance.trigger_timeout,
            Trigger.classpath,
            Trigger.encrypted_kwargs,
        )
        # By ID: a task instance's trigger relationship may still hold the previous deferral's row.
        .join(Trigger, Trigger.id == TaskInstance.trigger_id)
        .where(_of_run(request), tuple_(TaskInstance.task_id, TaskInstance.map_index).in_(keys))
        .order_by(TaskInstance.task_id, TaskInstance.map_index)
    )
    waits = []
    for task_id, map_index, try_number, queue, timeout_at, classpath, encrypted_kwargs in session.execute(query):
        # Airflow creates every task instance with its task's queue.
        assert queue is not None, f"{task_id}[{map_index}] has no queue"
        waits.append(
            _Waiting(
                key=(task_id, map_index),
                try_number=try_number,
                classpath=classpath,
                # Also a trigger Airflow's scheduler created itself (start_from_trigger), encrypted.
                trigger_kwargs=serialize(Trigger._decrypt_kwargs(encrypted_kwargs)),
                timeout_at=timeout_at,
                queue=queue,
                # As Airflow's triggerer decides it: by the task, however this deferral came about.
                start_from_trigger=bool(dag.get_task(task_id).start_from_trigger),
            )
        )
    return waits


def _of_run(request: DagRunRequest) -> ColumnElement[bool]:
    return and_(TaskInstance.dag_id == request.dag_id, TaskInstance.run_id == request.run_id)


def _schedule_failure(ti: TaskInstance, next_kwargs: dict[str, Any]) -> None:
    ti.next_method = TRIGGER_FAIL_REPR
    ti.next_kwargs = next_kwargs
    ti.trigger_id = None
    ti.state = TaskInstanceState.SCHEDULED
    ti.scheduled_dttm = workflow.now()


async def _sleep_until(moment: datetime) -> None:
    delay = moment - workflow.now()
    if delay > timedelta(0):
        await workflow.sleep(delay)


def _moment(waiting: _Waiting) -> datetime | None:
    """The moment of a time trigger given as a datetime (a templated ``target_time`` runs as a trigger)."""
    if waiting.classpath != DATETIME_TRIGGER:
        return None
    moment = _kwargs(waiting).get("moment")
    return moment if isinstance(moment, datetime) else None


def _kwargs(waiting: _Waiting) -> dict[str, Any]:
    """The trigger's keyword arguments, decoded: a trigger row holds them as a dict."""
    kwargs = deserialize(waiting.trigger_kwargs)
    assert isinstance(kwargs, dict), f"{waiting.classpath} kwargs are a {type(kwargs).__name__}"
    return kwargs
