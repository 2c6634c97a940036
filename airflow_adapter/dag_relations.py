"""Every task's upstream and downstream tasks and priority weight, computed once per DAG version.

Airflow answers these one task at a time with a walk of the graph (``get_flat_relative_ids``):
its downstream and upstream priority weight strategies walk it for every task instance it
creates, twice (``insert_mapping`` and ``TaskInstance.__init__``), and its trigger rule check
walks it twice per check to find the task's upstream setups (``get_upstreams_only_setups``),
even in a DAG without any. Creating a run of 2,000 tasks in layers cost ~10 s, and a scheduling
pass ~2 s, which one workflow activation cannot hold. Here the whole DAG is walked once, in topological order, keeping
each task's relatives as a bitset (a Python int, one bit per task): a task's descendants are the
union of its children and their descendants. A weight is then a few popcounts.

The figures are exactly Airflow's (tests/test_dag_relations.py checks them against Airflow's own
strategies on random DAGs). Deserialized DAGs are never changed, so the result is cached per DAG
object.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator
from graphlib import TopologicalSorter
from typing import Any

from airflow.serialization.definitions.dag import SerializedDAG
from airflow.serialization.definitions.node import DAGNode
from airflow.task.priority_strategy import _DownstreamPriorityWeightStrategy, _UpstreamPriorityWeightStrategy


class DagRelations:
    """The transitive upstream and downstream tasks of every task of one DAG, as bitsets."""

    def __init__(self, dag: Any) -> None:
        tasks = dag.task_dict
        # Sorted first so that the bit of each task does not depend on dict order.
        graph = {task_id: sorted(tasks[task_id].upstream_task_ids) for task_id in sorted(tasks)}
        order = list(TopologicalSorter(graph).static_order())
        self._task_ids = order
        self._bit = {task_id: 1 << index for index, task_id in enumerate(order)}
        self._ancestors: dict[str, int] = {}
        for task_id in order:
            mask = 0
            for upstream_id in graph[task_id]:
                mask |= self._bit[upstream_id] | self._ancestors[upstream_id]
            self._ancestors[task_id] = mask
        self._descendants: dict[str, int] = {}
        for task_id in reversed(order):
            mask = 0
            for downstream_id in tasks[task_id].downstream_task_ids:
                mask |= self._bit[downstream_id] | self._descendants[downstream_id]
            self._descendants[task_id] = mask
        # A setup is relevant to a task downstream of it if it has no teardown or one of its
        # teardowns is downstream of the task (Airflow's get_upstreams_only_setups_and_teardowns).
        self._setups = self._mask(task_id for task_id in order if tasks[task_id].is_setup)
        self._teardowns = self._mask(task_id for task_id in order if tasks[task_id].is_teardown)
        self._teardowns_of = {
            task_id: [t.task_id for t in tasks[task_id].downstream_list if t.is_teardown]
            for task_id in order
            if tasks[task_id].is_setup
        }
        self._downstream_of_setup = {
            task_id: self._mask(tasks[task_id].downstream_task_ids) for task_id in self._teardowns_of
        }
        self._own_weight = {task_id: tasks[task_id].priority_weight for task_id in order}
        self._weight_planes = _weight_planes(self._own_weight, self._bit)
        self._weights: dict[tuple[str, bool], int] = {}

    def upstream_ids(self, task_id: str) -> frozenset[str]:
        """What ``get_flat_relative_ids(upstream=True)`` returns for the task."""
        return frozenset(self._ids(self._ancestors[task_id]))

    def relative_ids(self, task_id: str, *, upstream: bool) -> set[str]:
        """What ``get_flat_relative_ids`` returns for the task."""
        return set(self._ids((self._ancestors if upstream else self._descendants)[task_id]))

    def setup_and_teardown_ids(self, task_id: str) -> list[str]:
        """What ``get_upstreams_only_setups_and_teardowns`` yields for the task, as ids (its
        setups in topological order, each followed by its teardowns)."""
        setups = self._ancestors[task_id] & self._setups
        if not setups:
            return []
        downstream_teardowns = self._descendants[task_id] & self._teardowns
        ids = []
        for setup_id in self._ids(setups):
            teardowns = self._teardowns_of[setup_id]
            if not teardowns or self._downstream_of_setup[setup_id] & downstream_teardowns:
                ids.append(setup_id)
                ids.extend(teardown_id for teardown_id in teardowns if teardown_id != task_id)
        return ids

    def is_upstream(self, upstream_id: str, of: str) -> bool:
        """Whether ``of`` transitively depends on ``upstream_id``."""
        bit = self._bit.get(upstream_id)
        return bit is not None and bool(self._ancestors[of] & bit)

    def priority_weight(self, task_id: str, *, upstream: bool) -> int:
        """The task's weight under Airflow's upstream (or else downstream) weight rule."""
        key = (task_id, upstream)
        weight = self._weights.get(key)
        if weight is None:
            relatives = (self._ancestors if upstream else self._descendants)[task_id]
            minimum, planes = self._weight_planes
            weight = self._own_weight[task_id] + minimum * relatives.bit_count()
            for shift, plane in planes:
                weight += (relatives & plane).bit_count() << shift
            self._weights[key] = weight
        return weight

    def _mask(self, task_ids: Iterable[str]) -> int:
        mask = 0
        for task_id in task_ids:
            mask |= self._bit[task_id]
        return mask

    def _ids(self, mask: int) -> list[str]:
        """The tasks of a bitset, in topological order."""
        ids = []
        while mask:
            low = mask & -mask
            ids.append(self._task_ids[low.bit_length() - 1])
            mask ^= low
        return ids


def _weight_planes(weights: dict[str, int], bits: dict[str, int]) -> tuple[int, list[tuple[int, int]]]:
    """The weights as ``minimum + sum(2**shift for each plane holding the task)``: the sum of
    the weights of a set of tasks is then a popcount per plane, however different they are."""
    minimum = min(weights.values(), default=0)
    planes: dict[int, int] = {}
    for task_id, weight in weights.items():
        rest, shift = weight - minimum, 0
        while rest:
            if rest & 1:
                planes[shift] = planes.get(shift, 0) | bits[task_id]
            rest >>= 1
            shift += 1
    return minimum, sorted(planes.items())


_relations: weakref.WeakKeyDictionary[SerializedDAG, DagRelations] = weakref.WeakKeyDictionary()


def relations_of(dag: SerializedDAG) -> DagRelations:
    """The DAG's relations, computed on first use. The DAG must not change afterwards (a
    deserialized DAG does not)."""
    relations = _relations.get(dag)
    if relations is None:
        relations = _relations[dag] = DagRelations(dag)
    return relations


DOWNSTREAM_WEIGHT = "airflow.task.priority_strategy._DownstreamPriorityWeightStrategy.get_weight"
UPSTREAM_WEIGHT = "airflow.task.priority_strategy._UpstreamPriorityWeightStrategy.get_weight"
FLAT_RELATIVE_IDS = "airflow.serialization.definitions.node.DAGNode.get_flat_relative_ids"
SETUPS_AND_TEARDOWNS = "airflow.serialization.definitions.node.DAGNode.get_upstreams_only_setups_and_teardowns"

_airflow_get_weight = {
    _DownstreamPriorityWeightStrategy: _DownstreamPriorityWeightStrategy.get_weight,
    _UpstreamPriorityWeightStrategy: _UpstreamPriorityWeightStrategy.get_weight,
}
_airflow_get_flat_relative_ids = DAGNode.get_flat_relative_ids
_airflow_get_upstreams_only_setups_and_teardowns = DAGNode.get_upstreams_only_setups_and_teardowns


def install_dag_relations() -> dict[str, Any]:
    """Let Airflow's walks of deserialized DAGs answer from ``relations_of``; returns the originals.

    Airflow's downstream and upstream weight strategies, and ``get_flat_relative_ids`` and
    ``get_upstreams_only_setups_and_teardowns`` of deserialized tasks (``DAGNode``; the task
    SDK's own classes are left alone). Only when the task belongs to a deserialized DAG; a
    ``depth``-bounded walk is still Airflow's.
    """
    for strategy, airflow_get_weight in _airflow_get_weight.items():
        strategy.get_weight = _fast_get_weight(  # type: ignore[method-assign]
            airflow_get_weight, upstream=strategy is _UpstreamPriorityWeightStrategy
        )
    # Airflow's own methods are replaced on its class: a monkeypatch mypy cannot type.
    DAGNode.get_flat_relative_ids = _get_flat_relative_ids  # type: ignore[method-assign]
    DAGNode.get_upstreams_only_setups_and_teardowns = (  # type: ignore[method-assign]
        _get_upstreams_only_setups_and_teardowns
    )
    return {
        DOWNSTREAM_WEIGHT: _airflow_get_weight[_DownstreamPriorityWeightStrategy],
        UPSTREAM_WEIGHT: _airflow_get_weight[_UpstreamPriorityWeightStrategy],
        FLAT_RELATIVE_IDS: _airflow_get_flat_relative_ids,
        SETUPS_AND_TEARDOWNS: _airflow_get_upstreams_only_setups_and_teardowns,
    }


def _fast_get_weight(airflow_get_weight: Any, *, upstream: bool) -> Any:
    def get_weight(self: Any, ti: Any) -> int:
        dag = ti.task.get_dag()
        if not isinstance(dag, SerializedDAG):
            weight: int = airflow_get_weight(self, ti)
            return weight
        return relations_of(dag).priority_weight(ti.task.task_id, upstream=upstream)

    return get_weight


def _get_flat_relative_ids(self: Any, *, upstream: bool = False, depth: int | None = None) -> set[str]:
    dag = self.get_dag()
    if depth is not None or not isinstance(dag, SerializedDAG):
        return _airflow_get_flat_relative_ids(self, upstream=upstream, depth=depth)
    return relations_of(dag).relative_ids(self.task_id, upstream=upstream)


def _get_upstreams_only_setups_and_teardowns(self: Any) -> Iterator[Any]:
    dag = self.get_dag()
    if not isinstance(dag, SerializedDAG):
        yield from _airflow_get_upstreams_only_setups_and_teardowns(self)
        return
    for task_id in relations_of(dag).setup_and_teardown_ids(self.task_id):
        yield dag.task_dict[task_id]
