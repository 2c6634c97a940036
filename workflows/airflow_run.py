"""One Airflow DAG run kept in a private database, driven by Airflow's own scheduling logic.

Everything here is synchronous and deterministic: it only reads the workflow's clock (through
Airflow's patched ``utcnow``) and the private database. The workflow decides when to call it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.api_fastapi.execution_api.datamodels.taskinstance import DagRun as DagRunData
from airflow.api_fastapi.execution_api.datamodels.taskinstance import TIRunContext
from airflow.callbacks.callback_requests import DagCallbackRequest, TaskCallbackRequest
from airflow.models.dagrun import DagRun
from airflow.models.taskmap import TaskMap
from airflow.models.taskreschedule import TaskReschedule
from airflow.utils.state import DagRunState, State, TaskInstanceState
from sqlalchemy.orm import Session

from airflow_adapter import require_installed
from airflow_adapter.expansion import expanding_in_slices
from schemas.runs import (
    AssetEventPayload,
    DagRunContext,
    DagRunResult,
    DataInterval,
    RunType,
    TaskInstanceResult,
    TaskState,
    TaskTryResult,
)
from workflows.airflow_db import database_image
from workflows.asset_rows import consumed_events, record_consumed_events
from workflows.dag_graph import DagGraph
from workflows.dag_run_setup import BUNDLE_NAME, create_airflow_dag_run, find_airflow_dag_run
from workflows.deferral_rows import record_try_end
from workflows.ready_tasks import ReadyTask, ReadyTasks
from workflows.run_task_instances import RunTaskInstances
from workflows.scheduling_focus import FocusedScheduling

FINISHED_RUN_STATES = frozenset({DagRunState.SUCCESS, DagRunState.FAILED})
# What Airflow's set_dag_run_state_to_failed counts as running (airflow/api/common/mark_tasks.py).
ACTIVE_TASK_STATES = frozenset(
    {
        TaskInstanceState.RUNNING,
        TaskInstanceState.DEFERRED,
        TaskInstanceState.UP_FOR_RESCHEDULE,
        TaskInstanceState.AWAITING_INPUT,
    }
)


class AirflowDagRun:
    """The run as Airflow's scheduler and execution API would keep it: scheduling passes hand out
    ready task instances, tries' outcomes are recorded, and the run is ended Airflow's way."""

    def __init__(self, session: Session, dag: Any, dag_run: DagRun, *, per_pass: int) -> None:
        """``per_pass``: task instances one scheduling pass may create and check (see ``FocusedScheduling``)."""
        require_installed()
        self._session = session
        self.dag = dag
        self._dag_run = dag_run
        self.graph = DagGraph(dag)
        self._task_instances = RunTaskInstances(session, dag_run)
        self._ready = ReadyTasks(self.graph, self._task_instances)
        self._focus = FocusedScheduling(session, dag_run, self.graph, self._task_instances, per_pass=per_pass)
        self._task_instances.load()
        self.dag_callback: DagCallbackRequest | None = None
        self._consumed: list[AssetEventPayload] | None = None

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
        triggering_asset_events: list[AssetEventPayload] | None = None,
    ) -> AirflowDagRun:
        """Register the DAG version and create the run with its task instances.

        Raises ``ValueError`` (Airflow's own) when the run_id is not acceptable or the conf fails
        the DAG's ``Param`` validation.
        """
        dag, dag_run = create_airflow_dag_run(
            session,
            serialized_dag=serialized_dag,
            run_id=run_id,
            logical_date=logical_date,
            conf=conf,
            now=now,
            run_type=run_type,
            data_interval=data_interval,
            run_after=run_after,
        )
        session.flush()
        if triggering_asset_events:
            record_consumed_events(session, dag_run, triggering_asset_events)
        return cls(session, dag, dag_run, per_pass=per_pass)

    @classmethod
    def resume(cls, session: Session, *, serialized_dag: dict[str, Any], run_id: str, per_pass: int) -> AirflowDagRun:
        """The run as a database image taken by an earlier workflow of the same run left it."""
        dag, dag_run = find_airflow_dag_run(session, serialized_dag=serialized_dag, run_id=run_id)
        return cls(session, dag, dag_run, per_pass=per_pass)

    @property
    def airflow_dag_run(self) -> DagRun:
        """Airflow's own object for the run, its scheduling passes focused by this one."""
        return self._dag_run

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
            consumed_asset_events=self._consumed_asset_events(),
        )

    def _consumed_asset_events(self) -> list[AssetEventPayload]:
        if self._consumed is None:
            self._consumed = consumed_events(self._session, self._dag_run)
        return self._consumed

    def schedule(self) -> list[ReadyTask]:
        """Let Airflow settle the run's state and hand out what is ready to run.

        Airflow finishes some task instances itself (EmptyOperator, skips through trigger
        rules, upstream_failed), which can decide others, so this repeats until a pass changes
        nothing. Returns every scheduled task instance, also those scheduled by earlier calls
        that still wait for slots: they stay SCHEDULED until ``start`` marks them running.

        A pass does a bounded amount of work (``per_pass``); while
        ``scheduling_unfinished`` is true, the workflow calls again soon even if no try ended.
        """
        with expanding_in_slices(self._focus.expansions):
            self._focus.begin_pass()
            return self._schedule()

    def _schedule(self) -> list[ReadyTask]:
        while True:
            states_before = self._focus.take_changes()
            self._dag_run.dag = self.dag
            schedulable, dag_callback = self._dag_run.update_state(session=self._session, execute_callbacks=False)
            if dag_callback is not None:
                # What Airflow's scheduler would hand its DAG processor once the run ended.
                self.dag_callback = dag_callback
            if self.finished:
                return []
            # The same loaded task instances as ``states_before`` (nothing loads them in between).
            decided_by_airflow = self._task_instances.states() != states_before
            newly_scheduled = 0
            if schedulable:
                waiting_before = self._task_instances.count(TaskInstanceState.SCHEDULED)
                self._dag_run.schedule_tis(schedulable, session=self._session)
                # What defer_task set on the objects of tasks that start from their triggers is not
                # flushed when no task was scheduled by the bulk update: reading the rows would drop it.
                self._session.flush()
                # schedule_tis updates rows in bulk without refreshing the objects it was given.
                self._task_instances.refresh(schedulable)
                newly_scheduled = self._task_instances.count(TaskInstanceState.SCHEDULED) - waiting_before
            # Scheduling tasks decides nothing new; anything else Airflow changed (a skip, an
            # upstream_failed, an EmptyOperator it finished itself) may, so ask again.
            if not decided_by_airflow and newly_scheduled == len(schedulable):
                break
        # Stable: task instances are loaded in (task_id, map_index) order.
        return sorted(self._ready.scheduled(), key=lambda task: -task.priority_weight)

    @property
    def scheduling_unfinished(self) -> bool:
        """Whether task instances wait to be created or checked by the next scheduling pass."""
        return self._focus.unfinished

    @property
    def size(self) -> int:
        """How many task instances the run has now."""
        return len(self._task_instances.loaded)

    @property
    def expanding_lengths(self) -> dict[str, int]:
        """Mapped tasks whose expansion is not finished yet, with the length they will reach."""
        return self._focus.expansions.unfinished

    def task_instance_states(self) -> dict[str, list[tuple[int, str | None]]]:
        """Task id -> (map index, state) of each of its task instances, in map index order."""
        return self._task_instances.states_by_task()

    def start(self, task: ReadyTask) -> None:
        """The task's try is handed to an activity: this workflow is its executor."""
        self._task_instances.one(task.task_id, task.map_index).state = TaskInstanceState.RUNNING
        self._session.flush()

    def record(self, result: TaskTryResult) -> None:
        """Store how a try ended, the way Airflow's execution API would."""
        ti = self._task_instances.one(result.task_id, result.map_index)
        ti.state = TaskInstanceState(result.state.value)
        ti.start_date = result.start_date
        ti.end_date = result.end_date
        ti.duration = (result.end_date - result.start_date).total_seconds()
        if result.rendered_map_index is not None:
            ti.rendered_map_index = result.rendered_map_index  # type: ignore[method-assign]  # a hybrid property
        record_try_end(self._session, ti, result, result.end_date)
        if result.state is TaskState.UP_FOR_RETRY:
            ti.retry_delay_override = result.retry_delay_seconds
            # As Airflow's execution API does: the next try starts without this one's reschedules.
            ti.prepare_db_for_next_try(self._session)
            self._ready.rescheduled.discard((ti.task_id, ti.map_index))
        if result.state is TaskState.UP_FOR_RESCHEDULE:
            # What Airflow's ReadyToRescheduleDep waits for, and where the sensor's timeout counts from.
            assert result.reschedule_date is not None, "a rescheduled poke reports when it pokes again"
            self._session.add(TaskReschedule(ti.id, result.start_date, result.end_date, result.reschedule_date))
            self._ready.rescheduled.add((ti.task_id, ti.map_index))
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
            for skipped in self._task_instances.all():
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
        ti = self._task_instances.one(result.task_id, result.map_index)
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
            # Validated from a dict: the fields left out keep their defaults and stay unset.
            context_from_server=TIRunContext.model_validate(
                {"dag_run": DagRunData.model_validate(self._dag_run, from_attributes=True), "max_tries": ti.max_tries}
            ),
        )

    @property
    def session(self) -> Session:
        return self._session

    def next_wakeup(self) -> datetime | None:
        """When the earliest waiting retry or rescheduled poke becomes eligible, if any task waits."""
        times = []
        for ti in self._task_instances.all(TaskInstanceState.UP_FOR_RETRY):
            ti.task = self.dag.get_task(ti.task_id)
            times.append(ti.next_retry_datetime())  # type: ignore[no-untyped-call]  # Airflow leaves it unannotated
        for ti in self._task_instances.all(TaskInstanceState.UP_FOR_RESCHEDULE):
            times.append(self._task_instances.reschedules(ti)[-1].reschedule_date)
        return min(times, default=None)

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
                for ti in self._task_instances.all()
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
        for ti in self._task_instances.all():
            if ti.state in ACTIVE_TASK_STATES:
                ti.set_state(TaskInstanceState.FAILED, session=self._session)
            elif ti.state in State.unfinished:
                ti.set_state(TaskInstanceState.SKIPPED, session=self._session)
        self.fail(at)

    def mark_timed_out(self, at: datetime) -> None:
        """What Airflow's scheduler does once dagrun_timeout passed: every unfinished task
        instance, running ones included, is skipped and the run fails."""
        unfinished = [ti for ti in self._task_instances.all() if ti.state in State.unfinished]
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
