"""What a run asks of its DAG's structure, each answer computed once per task."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


class DagGraph:
    """Relations and queues of the tasks of one (deserialized) DAG."""

    def __init__(self, dag: Any) -> None:
        self.dag = dag
        self._relatives: dict[str, frozenset[str]] = {}
        self._upstream: dict[str, frozenset[str]] = {}
        self._queues: dict[str, str] = {}
        self._grid_order: list[str] | None = None

    def relatives_of(self, task_id: str) -> frozenset[str]:
        """The tasks whose state Airflow's dependency checks of this task look at."""
        relatives = self._relatives.get(task_id)
        if relatives is None:
            task = self.dag.get_task(task_id)
            relatives = frozenset(task.upstream_task_ids) | {
                relative.task_id for relative in task.get_upstreams_only_setups_and_teardowns()
            }
            self._relatives[task_id] = relatives
        return relatives

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

    def queue_of(self, task_id: str) -> str:
        queue = self._queues.get(task_id)
        if queue is None:
            queue = self._queues[task_id] = self.dag.get_task(task_id).queue
        return queue

    def grid_order(self) -> list[str]:
        """Task ids as Airflow's grid lists them: upstream before downstream, a task group's tasks together."""
        if self._grid_order is None:
            self._grid_order = list(_topological_task_ids(self.dag.task_group))
        return self._grid_order


def _topological_task_ids(task_group: Any) -> Iterator[str]:
    # Airflow sorts one group's children at a time; its grid walks the groups the same way.
    for node in task_group.topological_sort():
        if hasattr(node, "children"):
            yield from _topological_task_ids(node)
        else:
            yield node.task_id
