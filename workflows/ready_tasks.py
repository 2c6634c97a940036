"""The task instances Airflow has scheduled, as the workflow hands them out to activities."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from airflow.models.taskinstance import TaskInstance
from airflow.utils.state import TaskInstanceState

from workflows.dag_graph import DagGraph
from workflows.run_task_instances import RunTaskInstances, TaskInstanceKey


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


class ReadyTasks:
    """Builds a ``ReadyTask`` once per try: tasks that wait for slots are in every pass's list."""

    def __init__(self, graph: DagGraph, task_instances: RunTaskInstances) -> None:
        self._graph = graph
        self._task_instances = task_instances
        self._built: dict[TaskInstanceKey, ReadyTask] = {}
        # Task instances whose current try has poked and rescheduled before: only theirs have
        # TaskReschedule rows to read when they are scheduled again.
        self.rescheduled: set[TaskInstanceKey] = task_instances.rescheduled_keys()

    def scheduled(self) -> list[ReadyTask]:
        """Every SCHEDULED task instance, in (task_id, map_index) order."""
        # From the loaded objects: tasks waiting for slots are scheduled again at every pass.
        self._task_instances.load()
        return [self._ready(ti) for ti in self._task_instances.loaded if ti.state == TaskInstanceState.SCHEDULED]

    def _ready(self, ti: TaskInstance) -> ReadyTask:
        key = (ti.task_id, ti.map_index)
        ready = self._built.get(key)
        # A resumed deferral is the same try, scheduled again with what its trigger sent.
        if ready is None or ready.try_number != ti.try_number or key in self.rescheduled or ti.next_method:
            reschedules = self._task_instances.reschedules(ti) if key in self.rescheduled else []
            ready = self._built[key] = ReadyTask(
                task_id=ti.task_id,
                map_index=ti.map_index,
                try_number=ti.try_number,
                max_tries=ti.max_tries,
                queue=self._graph.queue_of(ti.task_id),
                priority_weight=ti.priority_weight or 0,
                reschedule_count=len(reschedules),
                first_reschedule_start_date=reschedules[0].start_date if reschedules else None,
                next_method=ti.next_method,
                next_kwargs=ti.next_kwargs,
            )
        return ready
