"""Relatives, setups and priority weights from airflow_adapter/dag_relations.py are exactly Airflow's.

Airflow's own walks are the oracle: random DAGs (random edges, weights, setups and teardowns) are
deserialized and every task is asked both ways, Airflow's code first, before the fast one is
installed on the DAG's class.
"""

from __future__ import annotations

import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG
from airflow.serialization.serialized_objects import DagSerialization
from airflow.task.priority_strategy import (
    _DownstreamPriorityWeightStrategy,
    _UpstreamPriorityWeightStrategy,
)
from hypothesis import given, settings
from hypothesis import strategies as st

import airflow_adapter
from airflow_adapter import dag_relations
from airflow_adapter.dag_relations import DagRelations

STRATEGIES = {False: _DownstreamPriorityWeightStrategy, True: _UpstreamPriorityWeightStrategy}


@st.composite
def random_dags(draw: st.DrawFn) -> DAG:
    size = draw(st.integers(min_value=1, max_value=25))
    with DAG(f"random_{draw(st.integers(0, 10**9))}", schedule=None, start_date=datetime.datetime(2025, 1, 1)) as dag:
        tasks = [
            EmptyOperator(task_id=f"t{i}", priority_weight=draw(st.integers(min_value=-5, max_value=2**20)))
            for i in range(size)
        ]
        # Edges only from lower to higher index: always acyclic.
        for low in range(size):
            for high in range(low + 1, size):
                if draw(st.integers(0, 3)) == 0:
                    tasks[low] >> tasks[high]
        for index in draw(st.sets(st.integers(0, size - 1), max_size=3)):
            tasks[index].is_setup = True
        for index in draw(st.sets(st.integers(0, size - 1), max_size=3)):
            if not tasks[index].is_setup:
                tasks[index].is_teardown = True
    return dag


class _Ti:
    def __init__(self, task) -> None:
        self.task = task


@settings(max_examples=200, deadline=None)
@given(random_dags())
def test_relatives_setups_and_weights_are_airflows(dag: DAG) -> None:
    serialized = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    relations = DagRelations(serialized)
    for task_id, task in serialized.task_dict.items():
        ti = _Ti(task)
        for upstream in (False, True):
            airflow_relatives = dag_relations._airflow_get_flat_relative_ids(task, upstream=upstream)
            assert relations.relative_ids(task_id, upstream=upstream) == airflow_relatives
            airflow_weight = dag_relations._airflow_get_weight[STRATEGIES[upstream]](STRATEGIES[upstream](), ti)
            assert relations.priority_weight(task_id, upstream=upstream) == airflow_weight
        airflow_setups = [t.task_id for t in dag_relations._airflow_get_upstreams_only_setups_and_teardowns(task)]
        fast_setups = relations.setup_and_teardown_ids(task_id)
        assert sorted(fast_setups) == sorted(airflow_setups)
        assert len(fast_setups) == len(airflow_setups)
        assert relations.upstream_ids(task_id) == frozenset(airflow_relatives)


def test_installed_walks_answer_for_deserialized_dags_only() -> None:
    with DAG("installed", schedule=None, start_date=datetime.datetime(2025, 1, 1)) as dag:
        setup = EmptyOperator(task_id="setup").as_setup()
        work = EmptyOperator(task_id="work")
        teardown = EmptyOperator(task_id="teardown").as_teardown(setups=setup)
        setup >> work >> teardown
    airflow_adapter.install()
    serialized = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    task = serialized.get_task("work")
    assert [t.task_id for t in task.get_upstreams_only_setups_and_teardowns()] == ["setup", "teardown"]
    assert task.get_flat_relative_ids(upstream=True) == {"setup"}
    assert _DownstreamPriorityWeightStrategy().get_weight(_Ti(task)) == 2
    # The task SDK's own DAG is still walked by Airflow.
    assert dag.get_task("work").get_flat_relative_ids(upstream=False) == {"teardown"}
