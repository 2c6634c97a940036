"""Which task instances one scheduling pass looks at, and how far it expands mapped tasks.

Airflow checks every waiting task instance against every finished one in each pass, which grows
with the square of the DAG's size. Whether a task instance's dependencies are met only changes
when one of its upstream tasks (or their setups) changes state or when time passes (retry and
reschedule waits), so the others are left out of the dependency check; everything else
``update_state`` does (expansion, the run's state) is unchanged. A pass also does a bounded amount
of work: what is left over is checked or created by the next one.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from airflow.models.dagrun import DagRun
from airflow.models.taskinstance import TaskInstance
from airflow.utils.state import TaskInstanceState
from sqlalchemy.orm import Session

from airflow_adapter.dag_run_hooks import expand_next_slice, focus_scheduling
from airflow_adapter.expansion import ExpansionSlices
from workflows.dag_graph import DagGraph
from workflows.run_task_instances import RunTaskInstances, TaskInstanceKey

IN_FLIGHT_STATES = frozenset({TaskInstanceState.SCHEDULED, TaskInstanceState.QUEUED, TaskInstanceState.RUNNING})
TIMED_STATES = frozenset({TaskInstanceState.UP_FOR_RETRY, TaskInstanceState.UP_FOR_RESCHEDULE})


class FocusedScheduling:
    """What Airflow's scheduling pass asks the run (``airflow_adapter.dag_run_hooks.SchedulingFocus``)."""

    def __init__(
        self, session: Session, dag_run: DagRun, graph: DagGraph, task_instances: RunTaskInstances, *, per_pass: int
    ) -> None:
        """``per_pass``: task instances one scheduling pass may create and check. Airflow does
        both one task instance at a time, about a millisecond each, and Temporal's SDK fails a
        workflow task that holds the worker's thread for 2 s; the rest wait for the next pass."""
        self._session = session
        self._dag_run = dag_run
        self._graph = graph
        self._task_instances = task_instances
        # Task instance states as the previous scheduling pass left them, in the order of the
        # loaded task instances they were read from: what changed since tells which task
        # instances Airflow needs to look at again.
        self._loaded_seen: list[TaskInstance] = []
        self._states_seen: list[str | None] = []
        self._keys_seen: set[TaskInstanceKey] = set()
        self._changed_task_ids: set[str] = set()
        # Task instances left unchecked by a pass that used up its checks, and those held back
        # until the expansion of a mapped task they depend on is finished.
        self._unchecked: set[TaskInstanceKey] = set()
        self._held_back: set[TaskInstanceKey] = set()
        self._per_pass = per_pass
        self._checks_left = 0
        self.expansions = ExpansionSlices(per_pass)
        self.expansions.recover(graph.dag, dag_run.run_id, session)
        focus_scheduling(dag_run, self)

    @property
    def unfinished(self) -> bool:
        """Whether task instances wait to be created or checked by the next scheduling pass."""
        return bool(self._unchecked or self.expansions.unfinished)

    def begin_pass(self) -> None:
        """A new pass: its checks are counted afresh, and unfinished expansions go one slice on."""
        self._checks_left = self._per_pass
        for task_id in sorted(self.expansions.unfinished):
            expand_next_slice(
                self._dag_run,
                self._graph.dag.get_task(task_id),
                dag_version_id=self._task_instances.first_dag_version_id(task_id),
                session=self._session,
            )
        if not self.expansions.unfinished and self._held_back:
            self._unchecked |= self._held_back
            self._held_back.clear()

    def take_changes(self) -> list[str | None]:
        """The states now, in ``RunTaskInstances.loaded`` order, remembering which tasks changed
        since the previous pass looked."""
        self._task_instances.load()
        loaded = self._task_instances.loaded
        states = self._task_instances.states()
        if loaded is self._loaded_seen:
            # The same task instances in the same order (``load`` replaces the list when
            # their number changes): compared by position, without reading their keys.
            self._changed_task_ids = {
                loaded[position].task_id
                for position, (before, now) in enumerate(zip(self._states_seen, states, strict=True))
                if before != now
            }
        else:
            seen = dict(zip(((ti.task_id, ti.map_index) for ti in self._loaded_seen), self._states_seen, strict=True))
            keys = [(ti.task_id, ti.map_index) for ti in loaded]
            self._changed_task_ids = {
                task_id
                for (task_id, map_index), state in zip(keys, states, strict=True)
                if seen.get((task_id, map_index), "unseen") != state
            }
            self._keys_seen = set(keys)
        self._loaded_seen, self._states_seen = loaded, states
        return states

    def checked_now(self, schedulable: list[TaskInstance]) -> list[TaskInstance]:
        candidates = [ti for ti in schedulable if self._may_be_ready(ti)]
        checked = candidates[: self._checks_left]
        self._checks_left -= len(checked)
        self._unchecked = {(ti.task_id, ti.map_index) for ti in candidates[len(checked) :]}
        return checked

    def relatives_of(self, task_id: str) -> frozenset[str]:
        return self._graph.relatives_of(task_id)

    def keeps_run_going(self, unfinished: list[TaskInstance]) -> bool:
        # A task instance the workflow is running, or one a later pass will create or check,
        # makes the run not deadlocked; Airflow would find the same by checking every one.
        return self.unfinished or any(ti.state in IN_FLIGHT_STATES for ti in unfinished)

    def expansion_session(self, session: Session) -> AbstractContextManager[Session]:
        return self.expansions.capping(session)

    def task_instances(self) -> list[TaskInstance]:
        return self._task_instances.loaded

    def _may_be_ready(self, ti: TaskInstance) -> bool:
        key = (ti.task_id, ti.map_index)
        expanding = self.expansions.unfinished
        if expanding and not self._graph.relatives_of(ti.task_id).isdisjoint(expanding):
            # Airflow would count the upstream task instances that exist so far as all of them.
            self._held_back.add(key)
            return False
        if (
            key in self._unchecked
            or ti.state in TIMED_STATES
            or ti.task_id in self._changed_task_ids
            or key not in self._keys_seen
        ):
            return True
        relatives = self._graph.relatives_of(ti.task_id)
        return not relatives or not relatives.isdisjoint(self._changed_task_ids)
