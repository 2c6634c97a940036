"""Expand a task mapped over many items a slice at a time, each slice in its own workflow task.

Airflow creates a mapped task's instances one by one, about a millisecond each, inside one
scheduling pass. Inside a workflow that pass is one workflow task, and Temporal's Python SDK fails
a workflow task that holds the worker's thread for 2 seconds: a task mapped over 10,000 items
would never get past its expansion. So while a run schedules, Airflow's own expansion code is told
the mapped length is at most what exists plus one slice; the run asks for the next slice in its
next pass until the real length is reached.

Only lengths read by Airflow's expansion (``TaskMap.expand_mapped_task`` and
``DagRun._revise_map_indexes_if_mapped``) are capped. Everything else (trigger rules, the task's
own view of its map) reads the real length, and the run keeps the tasks downstream of an
unfinished expansion out of its dependency checks, because Airflow counts their upstream task
instances from the rows that exist.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from airflow.models.taskinstance import TaskInstance
from airflow.models.taskmap import TaskMap
from airflow.serialization.definitions import mappedoperator
from airflow.serialization.definitions.mappedoperator import SerializedMappedOperator
from sqlalchemy import func, select
from sqlalchemy.orm import Session

GET_MAPPED_TI_COUNT = "airflow.serialization.definitions.mappedoperator.get_mapped_ti_count"
EXPAND_MAPPED_TASK = "airflow.models.taskmap.TaskMap.expand_mapped_task"


class ExpansionSlices:
    """The mapped tasks of one run whose expansion is not finished, with their real lengths."""

    def __init__(self, per_slice: int) -> None:
        self.per_slice = per_slice
        self.unfinished: dict[str, int] = {}
        self._capping = False

    def recover(self, dag: Any, run_id: str, session: Session) -> None:
        """Find the expansions an earlier workflow of the run left unfinished (continue-as-new)."""
        expanded: dict[str, int] = {
            task_id: count
            for task_id, count in session.execute(
                select(TaskInstance.task_id, func.count())
                .where(TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == run_id, TaskInstance.map_index >= 0)
                .group_by(TaskInstance.task_id)
            )
        }
        for task in dag.tasks:
            if isinstance(task, SerializedMappedOperator) and task.task_id in expanded:
                total = mappedoperator.get_mapped_ti_count(task, run_id, session=session)
                if total > expanded[task.task_id]:
                    self.unfinished[task.task_id] = total

    @contextmanager
    def capping(self, session: Session) -> Iterator[Session]:
        """Airflow's expansion code runs in this block, on the session it yields."""
        self._capping = True
        try:
            yield _AddingInBulk(session)  # type: ignore[misc]
        finally:
            self._capping = False
        session.flush()

    def length(self, task: Any, run_id: str, total: int, session: Session) -> int:
        """The length Airflow's expansion may see now: what exists plus one slice."""
        if not self._capping or not isinstance(task, SerializedMappedOperator):
            return total
        expanded: int = (
            session.scalar(
                select(func.count())
                .select_from(TaskInstance)
                .where(
                    TaskInstance.dag_id == task.dag_id,
                    TaskInstance.task_id == task.task_id,
                    TaskInstance.run_id == run_id,
                    TaskInstance.map_index >= 0,
                )
            )
            or 0
        )
        allowed = expanded + self.per_slice
        if total > allowed:
            self.unfinished[task.task_id] = total
            return allowed
        self.unfinished.pop(task.task_id, None)
        return total


class _AddingInBulk:
    """The session as Airflow's expansion code uses it, minus its cost per task instance.

    Each new task instance has a fresh primary key, so merging it could only find nothing: it is
    added instead. And all of them are flushed together when the expansion is done, not one by one.
    """

    def __init__(self, session: Session) -> None:
        self._session = session

    def merge(self, instance: Any, **_: Any) -> Any:
        self._session.add(instance)
        return instance

    def flush(self, objects: Any = None) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


_scheduling: ContextVar[ExpansionSlices | None] = ContextVar("dagbridge_expansion_slices", default=None)


@contextmanager
def expanding_in_slices(slices: ExpansionSlices) -> Iterator[None]:
    """Cap Airflow's expansions by ``slices`` while the current thread schedules one run."""
    token = _scheduling.set(slices)
    try:
        yield
    finally:
        _scheduling.reset(token)


def install_sliced_expansion() -> dict[str, Any]:
    """Wrap Airflow's expansion so it honours ``expanding_in_slices``; a no-op anywhere else.

    Returns the replaced functions by the name ``check`` knows them by.
    """
    original_count = mappedoperator.get_mapped_ti_count
    original_expand_method = TaskMap.expand_mapped_task
    # The function under the classmethod, to be called with the class again.
    original_expand = inspect.getattr_static(TaskMap, "expand_mapped_task").__func__

    def get_mapped_ti_count(task: Any, run_id: str, *, session: Session) -> int:
        total: int = original_count(task, run_id, session=session)
        slices = _scheduling.get()
        return total if slices is None else slices.length(task, run_id, total, session)

    def expand_mapped_task(cls: type[TaskMap], task: Any, run_id: str, *, session: Session) -> Any:
        slices = _scheduling.get()
        if slices is None:
            return original_expand(cls, task, run_id, session=session)
        with slices.capping(session) as expansion_session:
            return original_expand(cls, task, run_id, session=expansion_session)

    # Airflow's expansion imports the function from its module at call time.
    mappedoperator.get_mapped_ti_count = get_mapped_ti_count  # type: ignore[assignment]  # a plain function for a singledispatch one
    TaskMap.expand_mapped_task = classmethod(expand_mapped_task)  # type: ignore[assignment,method-assign]
    return {
        GET_MAPPED_TI_COUNT: original_count,
        EXPAND_MAPPED_TASK: original_expand_method,
    }
