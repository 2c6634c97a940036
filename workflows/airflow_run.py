"""One Airflow DAG run kept in a private database, driven by Airflow's own scheduling logic.

Everything here is synchronous and deterministic: it only reads the workflow's clock (through
Airflow's patched ``utcnow``) and the private database. The workflow decides when to call it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from airflow.models.dag import DagModel
from airflow.models.dagbundle import DagBundleModel
from airflow.models.dagrun import DagRun
from airflow.models.serialized_dag import SerializedDagModel
from airflow.models.taskinstance import TaskInstance
from airflow.models.taskmap import TaskMap
from airflow.serialization.serialized_objects import DagSerialization, LazyDeserializedDAG
from airflow.utils.state import DagRunState, TaskInstanceState
from airflow.utils.types import DagRunTriggeredByType, DagRunType
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from schemas.runs import (
    DagRunContext,
    DagRunResult,
    RunTaskInstance,
    TaskInstanceResult,
    TaskState,
    TaskTryResult,
)

BUNDLE_NAME = "dagbridge"
FINISHED_RUN_STATES = frozenset({DagRunState.SUCCESS, DagRunState.FAILED})


@dataclass(frozen=True)
class ReadyTask:
    """A task instance Airflow has scheduled: it needs an activity once its slots are free."""

    task_id: str
    map_index: int
    try_number: int
    max_tries: int
    queue: str
    priority_weight: int


class AirflowDagRun:
    def __init__(self, session: Session, dag: Any, dag_run: DagRun) -> None:
        self._session = session
        self.dag = dag
        self._dag_run = dag_run

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
    ) -> AirflowDagRun:
        """Register the DAG version and create the run with its task instances.

        Raises ``ValueError`` (Airflow's own) when the run_id is not acceptable or the conf fails
        the DAG's ``Param`` validation.
        """
        dag_id = serialized_dag["dag"]["dag_id"]
        session.add(DagBundleModel(name=BUNDLE_NAME))
        session.add(DagModel(dag_id=dag_id, bundle_name=BUNDLE_NAME))
        session.flush()
        SerializedDagModel.write_dag(
            LazyDeserializedDAG(data=serialized_dag), bundle_name=BUNDLE_NAME, session=session
        )
        dag = DagSerialization.from_dict(serialized_dag)
        data_interval = (
            dag.timetable.infer_manual_data_interval(run_after=logical_date) if logical_date else None
        )
        dag_run = dag.create_dagrun(
            run_id=run_id,
            logical_date=logical_date,
            data_interval=data_interval,
            run_after=logical_date or now,
            conf=conf,
            run_type=DagRunType.MANUAL,
            triggered_by=DagRunTriggeredByType.REST_API,
            state=DagRunState.RUNNING,
            start_date=now,
            session=session,
        )
        session.flush()
        return cls(session, dag, dag_run)

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
        """
        while True:
            states_before = self._task_states()
            self._dag_run.dag = self.dag
            schedulable, _ = self._dag_run.update_state(session=self._session, execute_callbacks=False)
            if self.finished:
                return []
            decided_by_airflow = self._task_states() != states_before
            newly_scheduled = 0
            if schedulable:
                waiting_before = len(self._task_instances(TaskInstanceState.SCHEDULED))
                self._dag_run.schedule_tis(schedulable, session=self._session)
                # schedule_tis updates rows in bulk without refreshing loaded objects.
                self._session.expire_all()
                newly_scheduled = len(self._task_instances(TaskInstanceState.SCHEDULED)) - waiting_before
            # Scheduling tasks decides nothing new; anything else Airflow changed (a skip, an
            # upstream_failed, an EmptyOperator it finished itself) may, so ask again.
            if not decided_by_airflow and newly_scheduled == len(schedulable):
                break
        return sorted(self._scheduled(), key=lambda t: (-t.priority_weight, t.task_id, t.map_index))

    def task_instances(self) -> list[RunTaskInstance]:
        return [
            RunTaskInstance(task_id=task_id, map_index=map_index, state=state)
            for task_id, map_index, state in self._task_states()
        ]

    def _task_states(self) -> list[tuple[str, int, str | None]]:
        query = self._in_this_run(select(TaskInstance.task_id, TaskInstance.map_index, TaskInstance.state))
        return [tuple(row) for row in self._session.execute(query)]

    def _scheduled(self) -> list[ReadyTask]:
        scheduled = []
        for ti in self._task_instances(TaskInstanceState.SCHEDULED):
            task = self.dag.get_task(ti.task_id)
            scheduled.append(
                ReadyTask(
                    task_id=ti.task_id,
                    map_index=ti.map_index,
                    try_number=ti.try_number,
                    max_tries=ti.max_tries,
                    queue=task.queue,
                    priority_weight=ti.priority_weight or 0,
                )
            )
        return scheduled

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
        if result.state is TaskState.UP_FOR_RETRY:
            ti.retry_delay_override = result.retry_delay_seconds
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

    def fail_task(self, task_id: str, map_index: int, at: datetime) -> None:
        """Mark a try failed when its activity could not report an outcome at all."""
        ti = self._task_instance(task_id, map_index)
        ti.state = TaskInstanceState.FAILED
        ti.end_date = at
        self._session.flush()

    def next_wakeup(self) -> datetime | None:
        """When the earliest waiting retry becomes eligible, if any task waits for one."""
        times = []
        for ti in self._task_instances(TaskInstanceState.UP_FOR_RETRY):
            ti.task = self.dag.get_task(ti.task_id)
            times.append(ti.next_retry_datetime())
        return min(times, default=None)

    def upstream_task_ids(self, task_id: str) -> set[str]:
        """Every task this one transitively depends on: where its XCom pulls may look."""
        return self.dag.get_task(task_id).get_flat_relative_ids(upstream=True)

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

    def fail(self, at: datetime) -> None:
        """End the run as failed, leaving unfinished task instances as Airflow would see them."""
        self._dag_run.set_state(DagRunState.FAILED)
        self._dag_run.end_date = at
        self._session.flush()

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
