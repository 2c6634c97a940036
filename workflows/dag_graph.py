"""What a run asks of its DAG's structure, each answer computed once per task."""

from __future__ import annotations

from typing import Any


class DagGraph:
    """Relations and queues of the tasks of one (deserialized) DAG."""

    def __init__(self, dag: Any) -> None:
        self.dag = dag
        self._relatives: dict[str, frozenset[str]] = {}
        self._upstream: dict[str, frozenset[str]] = {}
        self._queues: dict[str, str] = {}

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
