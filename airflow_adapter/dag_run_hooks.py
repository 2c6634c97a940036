"""Hooks into one ``DagRun`` object's scheduling pass, set on the instance (the class is untouched).

``DagRun.update_state`` checks every waiting task instance against every finished one, lists the
run's task instances from the database and expands mapped tasks all at once. A run kept by a
workflow knows better: which task instances can have become ready, which are loaded already, and
how far an expansion may go in one pass. ``focus_scheduling`` hands those decisions to it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import AbstractContextManager
from typing import Any, Protocol

from airflow.models.dagrun import DagRun
from airflow.models.taskinstance import TaskInstance
from airflow.utils.state import State
from sqlalchemy.orm import Session

EVERY_TASK_STATE = frozenset(State.task_states)

GET_READY_TIS = "airflow.models.dagrun.DagRun._get_ready_tis"
ARE_PREMATURE_TIS = "airflow.models.dagrun.DagRun._are_premature_tis"
REVISE_MAP_INDEXES = "airflow.models.dagrun.DagRun._revise_map_indexes_if_mapped"
GET_TASK_INSTANCES = "airflow.models.dagrun.DagRun.get_task_instances"
HOOKED = (GET_READY_TIS, ARE_PREMATURE_TIS, REVISE_MAP_INDEXES, GET_TASK_INSTANCES)


class SchedulingFocus(Protocol):
    """What the run decides in place of Airflow's full scan."""

    def checked_now(self, schedulable: list[TaskInstance]) -> list[TaskInstance]:
        """The task instances this pass checks for readiness, out of all waiting ones."""

    def relatives_of(self, task_id: str) -> frozenset[str]:
        """The tasks whose state Airflow's dependency checks of this task look at."""

    def keeps_run_going(self, unfinished: list[TaskInstance]) -> bool:
        """Whether the run is certainly not deadlocked, without Airflow checking each task instance."""

    def expansion_session(self, session: Session) -> AbstractContextManager[Session]:
        """The session Airflow's expansion of a mapped task works on."""

    def task_instances(self) -> list[TaskInstance]:
        """Every task instance of the run, as loaded objects of the session."""


def focus_scheduling(dag_run: DagRun, focus: SchedulingFocus) -> None:
    """Make ``dag_run``'s scheduling passes ask ``focus`` (see ``SchedulingFocus``)."""
    check_ready = dag_run._get_ready_tis
    check_premature = dag_run._are_premature_tis
    revise_map_indexes = dag_run._revise_map_indexes_if_mapped

    def get_ready_tis(schedulable_tis: list[TaskInstance], finished_tis: list[TaskInstance], session: Session) -> Any:
        checked = focus.checked_now(schedulable_tis)
        # Airflow's dependency checks only look at finished relatives of the task instance.
        relevant = set().union(*(focus.relatives_of(ti.task_id) for ti in checked))
        return check_ready(checked, [ti for ti in finished_tis if ti.task_id in relevant], session)

    def are_premature_tis(
        unfinished_tis: list[TaskInstance], finished_tis: list[TaskInstance], session: Session
    ) -> tuple[bool, bool]:
        if focus.keeps_run_going(unfinished_tis):
            return True, False
        return check_premature(unfinished_tis, finished_tis, session)

    def revise_map_indexes_in_slices(task: Any, *, dag_version_id: Any, session: Session) -> Iterator[TaskInstance]:
        with focus.expansion_session(session) as expansion_session:
            created = list(revise_map_indexes(task, dag_version_id=dag_version_id, session=expansion_session))
        yield from created

    def get_task_instances(
        state: str | Collection[str] | None = None, *, session: Session | None = None
    ) -> list[TaskInstance]:
        wanted = None if state is None else ({state} if isinstance(state, str) else set(state))
        if wanted is None or wanted.issuperset(EVERY_TASK_STATE):
            # What each scheduling pass asks for (State.task_states): no state to read per task instance.
            return list(focus.task_instances())
        return [ti for ti in focus.task_instances() if ti.state in wanted]

    # Instance attributes shadow the class's methods for this one object; mypy compares them with
    # the methods' unbound signatures (with self), hence the ignores.
    dag_run._get_ready_tis = get_ready_tis  # type: ignore[method-assign]
    dag_run._are_premature_tis = are_premature_tis  # type: ignore[method-assign,assignment]
    dag_run._revise_map_indexes_if_mapped = revise_map_indexes_in_slices  # type: ignore[method-assign]
    dag_run.get_task_instances = get_task_instances  # type: ignore[method-assign,assignment]


def expand_next_slice(dag_run: DagRun, task: Any, *, dag_version_id: Any, session: Session) -> list[TaskInstance]:
    """Let Airflow create the next task instances of a mapped task whose expansion is unfinished."""
    return list(dag_run._revise_map_indexes_if_mapped(task, dag_version_id=dag_version_id, session=session))
