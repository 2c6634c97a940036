"""One Airflow DAG run kept in a private database, driven by Airflow's own scheduling logic.

Everything here is synchronous and deterministic: it only reads the workflow's clock (through
Airflow's patched ``utcnow``) and the private database. The workflow decides when to call it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from airflow.api_fastapi.execution_api.datamodels.taskinstance import DagRun as DagRunData
from airflow.api_fastapi.execution_api.datamodels.taskinstance import TIRunContext
from airflow.callbacks.callback_requests import DagCallbackRequest, TaskCallbackRequest
from airflow.models.dag import DagModel
from airflow.models.dagbundle import DagBundleModel
from airflow.models.dagrun import DagRun
from airflow.models.serialized_dag import SerializedDagModel
from airflow.models.taskinstance import TaskInstance
from airflow.models.taskmap import TaskMap
from airflow.models.taskreschedule import TaskReschedule
from airflow.serialization.serialized_objects import DagSerialization, LazyDeserializedDAG
from airflow.timetables.base import DataInterval as AirflowDataInterval
from airflow.utils.state import DagRunState, State, TaskInstanceState
from airflow.utils.types import DagRunTriggeredByType, DagRunType
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from schemas.runs import (
    DagRunContext,
    DagRunResult,
    DataInterval,
    RunType,
    TaskInstanceResult,
    TaskState,
    TaskTryResult,
)
from workflows.airflow_db import database_image
from workflows.deferral import record_try_end
from workflows.mapped_expansion import ExpansionSlices, expanding_in_slices, install_sliced_expansion

BUNDLE_NAME = "dagbridge"
# Who Airflow records as the run's creator, by what started it.
TRIGGERED_BY = {
    RunType.MANUAL: DagRunTriggeredByType.REST_API,
    RunType.SCHEDULED: DagRunTriggeredByType.TIMETABLE,
    RunType.BACKFILL: DagRunTriggeredByType.BACKFILL,
    RunType.ASSET_TRIGGERED: DagRunTriggeredByType.ASSET,
    RunType.OPERATOR_TRIGGERED: DagRunTriggeredByType.OPERATOR,
}
FINISHED_RUN_STATES = frozenset({DagRunState.SUCCESS, DagRunState.FAILED})
IN_FLIGHT_STATES = frozenset({TaskInstanceState.SCHEDULED, TaskInstanceState.QUEUED, TaskInstanceState.RUNNING})
TIMED_STATES = frozenset({TaskInstanceState.UP_FOR_RETRY, TaskInstanceState.UP_FOR_RESCHEDULE})
# New task instances are loaded by primary key, this many per statement (one bound parameter each).
LOAD_BATCH = 500
# What Airflow's set_dag_run_state_to_failed counts as running (airflow/api/common/mark_tasks.py).
ACTIVE_TASK_STATES = frozenset(
    {
        TaskInstanceState.RUNNING,
        TaskInstanceState.DEFERRED,
        TaskInstanceState.UP_FOR_RESCHEDULE,
        TaskInstanceState.AWAITING_INPUT,
    }
)


@dataclass(frozen=True)
class ReadyTask:
    """A task instance Airflow has scheduled: it needs an activity once its slots are free."""

    task_id: str
    map_index: int
    try_number: int
    max_tries: int
    queue: str
    priority_weight: int
    reschedule_count: int = 0
    first_reschedule_start_date: datetime | None = None
    # Set when the task instance resumes after a deferral (workflows/deferral.py).
    next_method: str | None = None
    next_kwargs: dict[str, Any] | None = None


class AirflowDagRun:
    def __init__(self, session: Session, dag: Any, dag_run: DagRun, *, per_pass: int) -> None:
        """``per_pass``: task instances one scheduling pass may create and check. Airflow does
        both one task instance at a time, about a millisecond each, and Temporal's SDK fails a
        workflow task that holds the worker's thread for 2 s; the rest wait for the next pass."""
        install_sliced_expansion()
        self._session = session
        self.dag = dag
        self._dag_run = dag_run
        # Task instance states as the previous scheduling pass left them: what changed since
        # tells which task instances Airflow needs to look at again.
        self._states_seen: dict[tuple[str, int], str | None] = {}
        self._changed_task_ids: set[str] = set()
        self._relatives: dict[str, frozenset[str]] = {}
        self._queues: dict[str, str] = {}
        self._ready_tasks: dict[tuple[str, int], ReadyTask] = {}
        self._upstream: dict[str, frozenset[str]] = {}
        # The session's identity map only holds objects weakly: without a reference, every pass
        # would rebuild all task instance objects from their rows.
        self._loaded: list[TaskInstance] = []
        # Task instances whose current try has poked and rescheduled before: only theirs have
        # TaskReschedule rows to read when they are scheduled again.
        self._rescheduled: set[tuple[str, int]] = {
            (task_id, map_index)
            for task_id, map_index in session.execute(
                self._in_this_run(select(TaskInstance.task_id, TaskInstance.map_index))
                .join(TaskReschedule, TaskReschedule.ti_id == TaskInstance.id)
                .distinct()
            )
        }
        # Task instances left unchecked by a pass that used up its checks, and those held back
        # until the expansion of a mapped task they depend on is finished.
        self._unchecked: set[tuple[str, int]] = set()
        self._held_back: set[tuple[str, int]] = set()
        self._per_pass = per_pass
        self._checks_left = 0
        self._expansions = ExpansionSlices(per_pass)
        self._expansions.recover(dag, dag_run.run_id, session)
        self._focus_airflow_on_changes()
        self._load_task_instances()
        self.dag_callback: DagCallbackRequest | None = None

    @classmethod
    def create(
        cls,
        session: Session,
        *,
        serialized_dag: dict[str, Any],
        run_id: str,
        logical_date: datetime | None,
        conf: dict[str, Any],
        now: datetime,
        per_pass: int,
        run_type: RunType = RunType.MANUAL,
        data_interval: DataInterval | None = None,
        run_after: datetime | None = None,
    ) -> AirflowDagRun:
        """Register the DAG version and create the run with its task instances.

        Raises ``ValueError`` (Airflow's own) when the run_id is not acceptable or the conf fails
        the DAG's ``Param`` validation.
        """
        dag_id = serialized_dag["dag"]["dag_id"]
        session.add(DagBundleModel(name=BUNDLE_NAME))
        # Airflow's callback requests name the DAG's file, where its DAG processor runs them.
        fileloc = serialized_dag["dag"].get("relative_fileloc") or ""
        session.add(DagModel(dag_id=dag_id, bundle_name=BUNDLE_NAME, relative_fileloc=fileloc))
        session.flush()
        SerializedDagModel.write_dag(LazyDeserializedDAG(data=serialized_dag), bundle_name=BUNDLE_NAME, session=session)
        dag = DagSerialization.from_dict(serialized_dag)
        if data_interval is not None:
            interval: AirflowDataInterval | None = AirflowDataInterval(data_interval.start, data_interval.end)
        else:
            interval = dag.timetable.infer_manual_data_interval(run_after=logical_date) if logical_date else None
        dag_run = dag.create_dagrun(
            run_id=run_id,
            logical_date=logical_date,
            data_interval=interval,
            run_after=run_after or logical_date or now,
            conf=conf,
            run_type=DagRunType(run_type.value),
            triggered_by=TRIGGERED_BY[run_type],
            state=DagRunState.RUNNING,
            start_date=now,
            session=session,
        )
        session.flush()
        return cls(session, dag, dag_run, per_pass=per_pass)

    @classmethod
    def resume(cls, session: Session, *, serialized_dag: dict[str, Any], run_id: str, per_pass: int) -> AirflowDagRun:
        """The run as a database image taken by an earlier workflow of the same run left it."""
        dag = DagSerialization.from_dict(serialized_dag)
        dag_run = session.scalars(select(DagRun).where(DagRun.dag_id == dag.dag_id, DagRun.run_id == run_id)).one()
        return cls(session, dag, dag_run, per_pass=per_pass)

    def database_image(self) -> bytes:
        return database_image(self._session)

    @property
    def state(self) -> DagRunState:
        return DagRunState(self._dag_run.state)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_RUN_STATES

    def context(self) -> DagRunContext:
        run = self._dag_run
        return DagRunContext(
            dag_id=run.dag_id,
            run_id=run.run_id,
            run_type=str(run.run_type),
            logical_date=run.logical_date,
            data_interval_start=run.data_interval_start,
            data_interval_end=run.data_interval_end,
            run_after=run.run_after,
            start_date=run.start_date,
            conf=run.conf or {},
        )

    def schedule(self) -> list[ReadyTask]:
        """Let Airflow settle the run's state and hand out what is ready to run.

        Airflow finishes some task instances itself (EmptyOperator, skips through trigger
        rules, upstream_failed), which can decide others, so this repeats until a pass changes
        nothing. Returns every scheduled task instance, also those scheduled by earlier calls
        that still wait for slots: they stay SCHEDULED until ``start`` marks them running.

        A pass does a bounded amount of work (``per_pass``); while
        ``scheduling_unfinished`` is true, the workflow calls again soon even if no try ended.
        """
        with expanding_in_slices(self._expansions):
            self._checks_left = self._per_pass
            self._continue_expansions()
            return self._schedule()

    def _schedule(self) -> list[ReadyTask]:
        while True:
            states_before = self._take_changes()
            self._dag_run.dag = self.dag
            schedulable, dag_callback = self._dag_run.update_state(session=self._session, execute_callbacks=False)
            if dag_callback is not None:
                # What Airflow's scheduler would hand its DAG processor once the run ended.
                self.dag_callback = dag_callback
            if self.finished:
                return []
            decided_by_airflow = self._state_map() != states_before
            newly_scheduled = 0
            if schedulable:
                waiting_before = self._count(TaskInstanceState.SCHEDULED)
                self._dag_run.schedule_tis(schedulable, session=self._session)
                # schedule_tis updates rows in bulk without refreshing the objects it was given.
                for ti in schedulable:
                    self._session.expire(ti)
                newly_scheduled = self._count(TaskInstanceState.SCHEDULED) - waiting_before
            # Scheduling tasks decides nothing new; anything else Airflow changed (a skip, an
            # upstream_failed, an EmptyOperator it finished itself) may, so ask again.
            if not decided_by_airflow and newly_scheduled == len(schedulable):
                break
        # Stable: task instances are loaded in (task_id, map_index) order.
        return sorted(self._scheduled(), key=lambda task: -task.priority_weight)

    @property
    def scheduling_unfinished(self) -> bool:
        """Whether task instances wait to be created or checked by the next scheduling pass."""
        return bool(self._unchecked or self._expansions.unfinished)

    @property
    def size(self) -> int:
        """How many task instances the run has now."""
        return len(self._loaded)

    @property
    def expanding_lengths(self) -> dict[str, int]:
        """Mapped tasks whose expansion is not finished yet, with the length they will reach."""
        return self._expansions.unfinished

    def _continue_expansions(self) -> None:
        """Create the next slice of each mapped task whose expansion is not finished yet."""
        for task_id in sorted(self._expansions.unfinished):
            dag_version_id = self._session.scalar(
                self._in_this_run(select(TaskInstance.dag_version_id)).where(TaskInstance.task_id == task_id).limit(1)
            )
            revised = self._dag_run._revise_map_indexes_if_mapped(
                self.dag.get_task(task_id), dag_version_id=dag_version_id, session=self._session
            )
            for _ in revised:
                pass
        if not self._expansions.unfinished and self._held_back:
            self._unchecked |= self._held_back
            self._held_back.clear()

    def _take_changes(self) -> dict[tuple[str, int], str | None]:
        """The states now, remembering which tasks changed since the previous pass looked."""
        self._load_task_instances()
        states = self._state_map()
        self._changed_task_ids = {
            task_id
            for (task_id, map_index), state in states.items()
            if self._states_seen.get((task_id, map_index), "unseen") != state
        }
        self._states_seen = states
        return states

    def _load_task_instances(self) -> None:
        """Keep every task instance of the run loaded, reloading only when their number changed.

        Airflow adds task instances while scheduling (mapped tasks expand); the loaded objects
        are the session's own, so state changes made through them or through ``record`` show.
        """
        if self._count() == len(self._loaded):
            return
        # Only the new rows are loaded: building a task instance from its row is what costs.
        by_id = {ti.id: ti for ti in self._loaded}
        ids = list(self._session.scalars(self._in_this_run(select(TaskInstance.id))))
        new_ids = [ti_id for ti_id in ids if ti_id not in by_id]
        for start in range(0, len(new_ids), LOAD_BATCH):
            batch = new_ids[start : start + LOAD_BATCH]
            by_id.update(
                (ti.id, ti) for ti in self._session.scalars(select(TaskInstance).where(TaskInstance.id.in_(batch)))
            )
        self._loaded = [by_id[ti_id] for ti_id in ids]

    def _focus_airflow_on_changes(self) -> None:
        """Let Airflow's scheduling pass look only at task instances that can have become ready.

        Airflow checks every waiting task instance against every finished one in each pass,
        which grows with the square of the DAG's size. Whether a task instance's dependencies
        are met only changes when one of its upstream tasks (or their setups) changes state or
        when time passes (retry and reschedule waits), so the others are left out of the
        dependency check; everything else update_state does (expansion, the run's state) is
        unchanged.
        """
        dag_run = self._dag_run
        check_ready = dag_run._get_ready_tis
        check_premature = dag_run._are_premature_tis
        revise_map_indexes = dag_run._revise_map_indexes_if_mapped

        def get_ready_tis(schedulable_tis, finished_tis, session):
            candidates = [ti for ti in schedulable_tis if self._may_be_ready(ti)]
            checked = candidates[: self._checks_left]
            self._checks_left -= len(checked)
            self._unchecked = {(ti.task_id, ti.map_index) for ti in candidates[len(checked) :]}
            # Airflow's dependency checks only look at finished relatives of the task instance.
            relevant = set().union(*(self._relatives_of(ti.task_id) for ti in checked))
            return check_ready(checked, [ti for ti in finished_tis if ti.task_id in relevant], session)

        def are_premature_tis(unfinished_tis, finished_tis, session):
            # A task instance the workflow is running, or one a later pass will create or check,
            # makes the run not deadlocked; Airflow would find the same by checking every one.
            if self.scheduling_unfinished or any(ti.state in IN_FLIGHT_STATES for ti in unfinished_tis):
                return True, False
            return check_premature(unfinished_tis, finished_tis, session)

        def revise_map_indexes_in_slices(task, *, dag_version_id, session):
            with self._expansions.capping(session) as expansion_session:
                created = list(revise_map_indexes(task, dag_version_id=dag_version_id, session=expansion_session))
            yield from created

        def get_task_instances(state=None, *, session=None):
            wanted = None if state is None else ({state} if isinstance(state, str) else set(state))
            return [ti for ti in self._loaded if wanted is None or ti.state in wanted]

        dag_run._get_ready_tis = get_ready_tis
        dag_run._are_premature_tis = are_premature_tis
        dag_run._revise_map_indexes_if_mapped = revise_map_indexes_in_slices
        dag_run.get_task_instances = get_task_instances

    def _may_be_ready(self, ti: TaskInstance) -> bool:
        key = (ti.task_id, ti.map_index)
        expanding = self._expansions.unfinished
        if expanding and not self._relatives_of(ti.task_id).isdisjoint(expanding):
            # Airflow would count the upstream task instances that exist so far as all of them.
            self._held_back.add(key)
            return False
        if (
            key in self._unchecked
            or ti.state in TIMED_STATES
            or ti.task_id in self._changed_task_ids
            or self._states_seen.get(key, "unseen") == "unseen"
        ):
            return True
        relatives = self._relatives_of(ti.task_id)
        return not relatives or not relatives.isdisjoint(self._changed_task_ids)

    def _relatives_of(self, task_id: str) -> frozenset[str]:
        """The tasks whose state Airflow's dependency checks of this task look at."""
        relatives = self._relatives.get(task_id)
        if relatives is None:
            task = self.dag.get_task(task_id)
            relatives = frozenset(task.upstream_task_ids) | {
                relative.task_id for relative in task.get_upstreams_only_setups_and_teardowns()
            }
            self._relatives[task_id] = relatives
        return relatives

    def task_instance_states(self) -> dict[str, list[tuple[int, str | None]]]:
        """Task id -> (map index, state) of each of its task instances, in map index order."""
        by_task: dict[str, list[tuple[int, str | None]]] = {}
        for ti in self._loaded:
            by_task.setdefault(ti.task_id, []).append((ti.map_index, ti.state))
        return by_task

    def _state_map(self) -> dict[tuple[str, int], str | None]:
        return {(ti.task_id, ti.map_index): ti.state for ti in self._loaded}

    def _scheduled(self) -> list[ReadyTask]:
        # From the loaded objects: tasks waiting for slots are scheduled again at every pass.
        self._load_task_instances()
        scheduled = []
        for ti in self._loaded:
            if ti.state != TaskInstanceState.SCHEDULED:
                continue
            key = (ti.task_id, ti.map_index)
            ready = self._ready_tasks.get(key)
            # Built once per try: tasks that wait for slots are in every pass's list.
            if ready is None or ready.try_number != ti.try_number or key in self._rescheduled or ti.next_method:
                reschedules = self._reschedules(ti) if key in self._rescheduled else []
                ready = self._ready_tasks[key] = ReadyTask(
                    task_id=ti.task_id,
                    map_index=ti.map_index,
                    try_number=ti.try_number,
                    max_tries=ti.max_tries,
                    queue=self._queue_of(ti.task_id),
                    priority_weight=ti.priority_weight or 0,
                    reschedule_count=len(reschedules),
                    first_reschedule_start_date=reschedules[0].start_date if reschedules else None,
                    next_method=ti.next_method,
                    next_kwargs=ti.next_kwargs,
                )
            scheduled.append(ready)
        return scheduled

    def _queue_of(self, task_id: str) -> str:
        queue = self._queues.get(task_id)
        if queue is None:
            queue = self._queues[task_id] = self.dag.get_task(task_id).queue
        return queue

    def start(self, task: ReadyTask) -> None:
        """The task's try is handed to an activity: this workflow is its executor."""
        self._task_instance(task.task_id, task.map_index).state = TaskInstanceState.RUNNING
        self._session.flush()

    def record(self, result: TaskTryResult) -> None:
        """Store how a try ended, the way Airflow's execution API would."""
        ti = self._task_instance(result.task_id, result.map_index)
        ti.state = TaskInstanceState(result.state.value)
        ti.start_date = result.start_date
        ti.end_date = result.end_date
        ti.duration = (result.end_date - result.start_date).total_seconds()
        if result.rendered_map_index is not None:
            ti.rendered_map_index = result.rendered_map_index
        record_try_end(self._session, ti, result, result.end_date)
        if result.state is TaskState.UP_FOR_RETRY:
            ti.retry_delay_override = result.retry_delay_seconds
            # As Airflow's execution API does: the next try starts without this one's reschedules.
            ti.prepare_db_for_next_try(self._session)
            self._rescheduled.discard((ti.task_id, ti.map_index))
        if result.state is TaskState.UP_FOR_RESCHEDULE:
            # What Airflow's ReadyToRescheduleDep waits for, and where the sensor's timeout counts from.
            self._session.add(TaskReschedule(ti.id, result.start_date, result.end_date, result.reschedule_date))
            self._rescheduled.add((ti.task_id, ti.map_index))
        if result.mapped_length is not None:
            self._session.merge(
                TaskMap(
                    dag_id=ti.dag_id,
                    task_id=ti.task_id,
                    run_id=ti.run_id,
                    map_index=ti.map_index,
                    length=result.mapped_length,
                    keys=None,
                )
            )
        if result.skip_downstream:
            for skipped in self._task_instances():
                if skipped.task_id in result.skip_downstream and skipped.state not in (
                    TaskInstanceState.SUCCESS,
                    TaskInstanceState.FAILED,
                    TaskInstanceState.RUNNING,
                ):
                    skipped.state = TaskInstanceState.SKIPPED
                    skipped.start_date = skipped.end_date = result.end_date
        self._session.flush()

    def unreported_failure_callback(self, result: TaskTryResult) -> TaskCallbackRequest | None:
        """The callback Airflow's scheduler asks for when a try ended without its runner reporting.

        A lost worker (Airflow: a task instance heartbeat timeout) never reached ``finalize``, so
        the task's retry or failure callback has not run; Airflow then runs it from the DAG
        processor, with this request. ``None`` when the task has no such callback.
        """
        ti = self._task_instance(result.task_id, result.map_index)
        task = self.dag.get_task(ti.task_id)
        retrying = result.state is TaskState.UP_FOR_RETRY
        if not (task.has_on_retry_callback if retrying else task.has_on_failure_callback):
            return None
        return TaskCallbackRequest(
            filepath=self._dag_run.dag_model.relative_fileloc,
            bundle_name=BUNDLE_NAME,
            bundle_version=None,
            ti=ti,
            msg=result.error.message if result.error else None,
            task_callback_type=TaskInstanceState.UP_FOR_RETRY if retrying else TaskInstanceState.FAILED,
            context_from_server=TIRunContext(
                dag_run=DagRunData.model_validate(self._dag_run, from_attributes=True),
                max_tries=ti.max_tries,
            ),
        )

    @property
    def session(self) -> Session:
        return self._session

    def deferred_task_instances(self) -> list[TaskInstance]:
        return self._task_instances(TaskInstanceState.DEFERRED)

    def fail_task(self, task_id: str, map_index: int, at: datetime) -> None:
        """Mark a try failed when its activity could not report an outcome at all."""
        ti = self._task_instance(task_id, map_index)
        ti.state = TaskInstanceState.FAILED
        ti.end_date = at
        self._session.flush()

    def next_wakeup(self) -> datetime | None:
        """When the earliest waiting retry or rescheduled poke becomes eligible, if any task waits."""
        times = []
        for ti in self._task_instances(TaskInstanceState.UP_FOR_RETRY):
            ti.task = self.dag.get_task(ti.task_id)
            times.append(ti.next_retry_datetime())
        for ti in self._task_instances(TaskInstanceState.UP_FOR_RESCHEDULE):
            times.append(self._reschedules(ti)[-1].reschedule_date)
        return min(times, default=None)

    def upstream_task_ids(self, task_id: str) -> frozenset[str]:
        """Every task this one transitively depends on: where its XCom pulls may look."""
        upstream = self._upstream.get(task_id)
        if upstream is None:
            upstream = self._upstream[task_id] = frozenset(
                self.dag.get_task(task_id).get_flat_relative_ids(upstream=True)
            )
        return upstream

    def direct_upstream_task_ids(self, task_id: str) -> frozenset[str]:
        return frozenset(self.dag.get_task(task_id).upstream_task_ids)

    def result(self, error: str | None = None) -> DagRunResult:
        run = self._dag_run
        return DagRunResult(
            dag_id=run.dag_id,
            run_id=run.run_id,
            state=str(self.state.value),
            start_date=run.start_date,
            end_date=run.end_date,
            error=error,
            task_instances=[
                TaskInstanceResult(
                    task_id=ti.task_id,
                    map_index=ti.map_index,
                    state=TaskInstanceState(ti.state).value if ti.state else None,
                    try_number=ti.try_number,
                    start_date=ti.start_date,
                    end_date=ti.end_date,
                )
                for ti in self._task_instances()
            ],
        )

    @property
    def deadline(self) -> datetime | None:
        """When the DAG's dagrun_timeout fails the run, if it has one."""
        timeout = self.dag.dagrun_timeout
        return self._dag_run.start_date + timeout if timeout else None

    def mark_failed_by_user(self, at: datetime) -> None:
        """What Airflow does when a user sets the run to failed: running task instances fail and
        unfinished ones are skipped (``set_dag_run_state_to_failed``).

        Airflow spares teardown tasks so its scheduler can still run them; this run ends now and
        nothing would run them, so they are marked like the rest.
        """
        for ti in self._task_instances():
            if ti.state in ACTIVE_TASK_STATES:
                ti.set_state(TaskInstanceState.FAILED, session=self._session)
            elif ti.state in State.unfinished:
                ti.set_state(TaskInstanceState.SKIPPED, session=self._session)
        self.fail(at)

    def mark_timed_out(self, at: datetime) -> None:
        """What Airflow's scheduler does once dagrun_timeout passed: every unfinished task
        instance, running ones included, is skipped and the run fails."""
        unfinished = [ti for ti in self._task_instances() if ti.state in State.unfinished]
        last_unfinished = max(
            unfinished, key=lambda ti: ti.start_date or at.min.replace(tzinfo=at.tzinfo), default=None
        )
        for ti in unfinished:
            ti.state = TaskInstanceState.SKIPPED
        self.fail(at)
        if self.dag.has_on_failure_callback:
            self.dag_callback = self._dag_run.produce_dag_callback(
                dag=self.dag, success=False, relevant_ti=last_unfinished, reason="timed_out", execute=False
            )

    def fail(self, at: datetime) -> None:
        """End the run as failed, leaving unfinished task instances as Airflow would see them."""
        self._dag_run.set_state(DagRunState.FAILED)
        self._dag_run.end_date = at
        self._session.flush()

    def _reschedules(self, ti: TaskInstance) -> list[TaskReschedule]:
        """The current try's rescheduled pokes, oldest first."""
        return list(self._session.scalars(TaskReschedule.stmt_for_task_instance(ti)))

    def _count(self, state: TaskInstanceState | None = None) -> int:
        query = self._in_this_run(select(func.count()).select_from(TaskInstance)).order_by(None)
        return self._session.scalar(query if state is None else query.where(TaskInstance.state == state))

    def _task_instances(self, state: TaskInstanceState | None = None) -> list[TaskInstance]:
        query = self._in_this_run(select(TaskInstance))
        if state is not None:
            query = query.where(TaskInstance.state == state)
        return list(self._session.scalars(query))

    def _task_instance(self, task_id: str, map_index: int) -> TaskInstance:
        query = self._in_this_run(select(TaskInstance)).where(
            TaskInstance.task_id == task_id, TaskInstance.map_index == map_index
        )
        return self._session.scalars(query).one()

    def _in_this_run(self, query: Select) -> Select:
        """This run's task instances, in a fixed order (decisions must not depend on row order)."""
        return query.where(
            TaskInstance.dag_id == self._dag_run.dag_id, TaskInstance.run_id == self._dag_run.run_id
        ).order_by(TaskInstance.task_id, TaskInstance.map_index)
