"""The task instances of one run in its private database, kept loaded between scheduling passes."""

from __future__ import annotations

from typing import Any, TypeVar

from airflow.models.dagrun import DagRun
from airflow.models.taskinstance import TaskInstance
from airflow.models.taskreschedule import TaskReschedule
from airflow.utils.state import TaskInstanceState
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

# New task instances are loaded by primary key, this many per statement (one bound parameter each).
LOAD_BATCH = 500

TaskInstanceKey = tuple[str, int]
_Query = TypeVar("_Query", bound=Select[*tuple[Any, ...]])


class RunTaskInstances:
    """Queries over one run's task instances, always in (task_id, map_index) order.

    Decisions must not depend on row order, so every query here fixes it.
    """

    def __init__(self, session: Session, dag_run: DagRun) -> None:
        self._session = session
        self._dag_id = dag_run.dag_id
        self._run_id = dag_run.run_id
        # The session's identity map only holds objects weakly: without a reference, every pass
        # would rebuild all task instance objects from their rows.
        self.loaded: list[TaskInstance] = []
        self._by_key: dict[TaskInstanceKey, TaskInstance] = {}

    def load(self) -> None:
        """Keep every task instance of the run loaded, reloading only when their number changed.

        Airflow adds task instances while scheduling (mapped tasks expand); the loaded objects
        are the session's own, so state changes made through them or through a query here show.
        """
        if self.count() == len(self.loaded):
            return
        # Only the new rows are loaded: building a task instance from its row is what costs.
        by_id = {ti.id: ti for ti in self.loaded}
        ids = list(self._session.scalars(self.in_this_run(select(TaskInstance.id))))
        new_ids = [ti_id for ti_id in ids if ti_id not in by_id]
        for start in range(0, len(new_ids), LOAD_BATCH):
            batch = new_ids[start : start + LOAD_BATCH]
            by_id.update(
                (ti.id, ti) for ti in self._session.scalars(select(TaskInstance).where(TaskInstance.id.in_(batch)))
            )
        self.loaded = [by_id[ti_id] for ti_id in ids]
        self._by_key = {(ti.task_id, ti.map_index): ti for ti in self.loaded}

    def refresh(self, task_instances: list[TaskInstance]) -> None:
        """Read these objects' rows again (after a bulk update), in a few queries rather than one per object."""
        ids = [ti.id for ti in task_instances]
        for start in range(0, len(ids), LOAD_BATCH):
            query = select(TaskInstance).where(TaskInstance.id.in_(ids[start : start + LOAD_BATCH]))
            self._session.scalars(query.execution_options(populate_existing=True)).all()

    def states(self) -> list[str | None]:
        """The state of each loaded task instance, in ``loaded`` order: one attribute read each
        (a scheduling pass of a large run reads them all, more than once)."""
        return [ti.state for ti in self.loaded]

    def states_by_task(self) -> dict[str, list[tuple[int, str | None]]]:
        """Task id -> (map index, state) of each of its task instances, in map index order."""
        by_task: dict[str, list[tuple[int, str | None]]] = {}
        for ti in self.loaded:
            by_task.setdefault(ti.task_id, []).append((ti.map_index, ti.state))
        return by_task

    def rescheduled_keys(self) -> set[TaskInstanceKey]:
        """Task instances whose current try has poked and rescheduled before."""
        query = (
            self.in_this_run(select(TaskInstance.task_id, TaskInstance.map_index))
            .join(TaskReschedule, TaskReschedule.ti_id == TaskInstance.id)
            .distinct()
        )
        return {(task_id, map_index) for task_id, map_index in self._session.execute(query)}

    def reschedules(self, ti: TaskInstance) -> list[TaskReschedule]:
        """The current try's rescheduled pokes, oldest first."""
        return list(self._session.scalars(TaskReschedule.stmt_for_task_instance(ti)))

    def count(self, state: TaskInstanceState | None = None) -> int:
        query = self.in_this_run(select(func.count()).select_from(TaskInstance)).order_by(None)
        count: int | None = self._session.scalar(query if state is None else query.where(TaskInstance.state == state))
        return count or 0

    def all(self, state: TaskInstanceState | None = None) -> list[TaskInstance]:
        """Fresh from the database (not only the loaded objects), optionally of one state."""
        query = self.in_this_run(select(TaskInstance))
        if state is not None:
            query = query.where(TaskInstance.state == state)
        return list(self._session.scalars(query))

    def one(self, task_id: str, map_index: int) -> TaskInstance:
        """Raises ``sqlalchemy.exc.NoResultFound`` when the run has no such task instance."""
        loaded = self._by_key.get((task_id, map_index))
        if loaded is not None:
            # The session's own object, as the query would return it, without a query per try.
            return loaded
        query = self.in_this_run(select(TaskInstance)).where(
            TaskInstance.task_id == task_id, TaskInstance.map_index == map_index
        )
        return self._session.scalars(query).one()

    def first_dag_version_id(self, task_id: str) -> Any:
        """The DAG version a task's first task instance was created with."""
        query = self.in_this_run(select(TaskInstance.dag_version_id)).where(TaskInstance.task_id == task_id).limit(1)
        return self._session.scalar(query)

    def in_this_run(self, query: _Query) -> _Query:
        """This run's task instances, in a fixed order (decisions must not depend on row order)."""
        return query.where(TaskInstance.dag_id == self._dag_id, TaskInstance.run_id == self._run_id).order_by(
            TaskInstance.task_id, TaskInstance.map_index
        )
