"""Producers and consumers of assets for tests/test_assets.py: each test has its own assets."""

from __future__ import annotations

import os
import time
from pathlib import Path

from airflow.sdk import DAG, Asset, AssetAlias, task

# A consumer's task holds its run open until this file exists: how a test keeps a run active.
GATE = Path(os.environ.get("TEST_ASSET_GATE", "/nonexistent/gate"))


def producer(dag_id: str, asset: Asset) -> DAG:
    """Updates ``asset`` with an extra naming the run, as Airflow's docs show it."""
    with DAG(dag_id, schedule=None, catchup=False) as dag:

        @task(outlets=[asset])
        def update(*, outlet_events=None, dag_run=None):
            outlet_events[asset].extra = {"produced_by": dag_run.run_id, "rows": 3}

        update()
    return dag


def consumer(
    dag_id: str, schedule, *, gated: bool = False, gate: Path = GATE, max_active_runs: int = 16, **dag_args
) -> DAG:
    """Returns what its run consumed: Airflow's ``triggering_asset_events`` and ``inlet_events``."""
    with DAG(dag_id, schedule=schedule, catchup=False, max_active_runs=max_active_runs, **dag_args) as dag:

        @task(inlets=[Asset("and_a")])
        def read(*, triggering_asset_events=None, inlet_events=None):
            if gated:
                while not gate.exists():
                    time.sleep(0.05)
            return {
                "triggering": {
                    (key.uri if isinstance(key, Asset) else f"alias:{key.name}"): [
                        {
                            "extra": event.extra,
                            "source_dag_id": event.source_dag_id,
                            "source_run_id": event.source_run_id,
                            "source_task_id": event.source_task_id,
                            "aliases": [alias.name for alias in event.source_aliases],
                        }
                        for event in events
                    ]
                    for key, events in triggering_asset_events.items()
                },
                "inlet_and_a": [event.extra for event in inlet_events[Asset("and_a")]],
            }

        read()
    return dag


and_a = producer("produce_and_a", Asset("and_a"))
and_b = producer("produce_and_b", Asset("and_b"))
consume_and = consumer("consume_and", Asset("and_a") & Asset("and_b"))

or_x = producer("produce_or_x", Asset("or_x"))
with DAG("produce_through_alias", schedule=None, catchup=False) as produce_through_alias:

    @task(outlets=[AssetAlias("or_alias")])
    def through_alias(*, outlet_events=None):
        outlet_events[AssetAlias("or_alias")].add(Asset("or_y"), extra={"via": "alias"})

    through_alias()

consume_or = consumer("consume_or", Asset("or_x") | AssetAlias("or_alias"))

# Consumed by no DAG: its events only go to the asset-events topic.
unconsumed = producer("produce_unconsumed", Asset(name="unconsumed", uri="s3://bucket/unconsumed"))

batch_c = producer("produce_batch_c", Asset("batch_c"))
batch_d = producer("produce_batch_d", Asset("batch_d"))
consume_batch = consumer("consume_batch", Asset("batch_c") | Asset("batch_d"), gated=True, max_active_runs=1)

# Conformance: what dag.test() records as AssetEvent rows for these outlets is what dagbridge emits.
with DAG("produce_mixed", schedule=None, catchup=False) as produce_mixed:

    @task(outlets=[Asset("mixed_a"), Asset("mixed_b"), AssetAlias("mixed_alias")])
    def mixed(*, outlet_events=None):
        outlet_events[Asset("mixed_a")].extra = {"k": "v"}
        outlet_events[AssetAlias("mixed_alias")].add(Asset("mixed_c"), extra={"via": "alias"})

    mixed()

# Pause: events that come while a DAG is paused queue nothing; queue rows made before stay.
pause_a = producer("produce_pause_a", Asset("pause_a"))
pause_b = producer("produce_pause_b", Asset("pause_b"))
consume_pause_and = consumer("consume_pause_and", Asset("pause_a") & Asset("pause_b"))

pause_held = producer("produce_pause_held", Asset("pause_held"))
consume_pause_held = consumer(
    "consume_pause_held", Asset("pause_held"), gated=True, gate=GATE.with_name("open-pause"), max_active_runs=1
)

born_paused = producer("produce_born_paused", Asset("born_paused"))
consume_born_paused = consumer("consume_born_paused", Asset("born_paused"), is_paused_upon_creation=True)
