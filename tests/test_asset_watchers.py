"""Airflow's AssetWatcher DAGs with Kafka triggers, served by the bridge: no triggerer, no scheduler.

The DAGs are the session worker's (tests/dags): the Kafka provider's documented example
(``example_kafka_watcher``, topic ``test``) and ``watched_orders`` / ``watched_batches``, whose
tasks return what ``triggering_asset_events`` gives them. Topics are fixed by the DAG files, so
each test reasons about every record on its topic, whoever produced it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
from aiokafka.structs import RecordMetadata
from temporalio.client import Client

from bridge.consumer import Outcome, WatcherOutcome
from bridge.replay import TopicRange, reconcile, replay
from bridge.routes import NO_ROUTES, parse_routes
from bridge.watchers import Watchers
from schemas.assets import AssetScheduleStatus
from schemas.ids import asset_schedule_workflow_id, asset_watcher_event_id, asset_watcher_run_id, dag_run_workflow_id
from schemas.names import ASSET_SCHEDULE_STATE_QUERY
from schemas.runs import DagRunResult
from schemas.settings import Settings
from tests.bridge_fixtures import (
    committed_offsets,
    end_offsets,
    eventually,
    produce,
    read_records,
    running_bridge,
    temporal_client_for,
    unique,
    workflow_ids,
)
from tests.harness import TEST_DAGS
from tests.processes import BridgeProcess
from tests.servers import TansuBroker, TemporalDevServer

EXAMPLE_TOPIC = "test"  # as the provider's example DAG declares it
ORDERS_TOPIC = "watched-orders"
BATCHES_TOPIC = "watched-batches"
NO_WORKER_QUEUE = "dagbridge-tests-nobody-polls-watchers"

_O = TypeVar("_O")


@pytest.fixture(scope="module")
def watched_topics(tansu: TansuBroker) -> None:
    tansu.create_topics([EXAMPLE_TOPIC, ORDERS_TOPIC, BATCHES_TOPIC], partitions=2)


@pytest.fixture
def settings(worker_settings: Settings, worker: None, tansu: TansuBroker, watched_topics: None) -> Settings:
    """The session worker's queue and dags folder, with the session's Tansu and a fresh group."""
    name = unique("watchers")
    settings = worker_settings.model_copy(
        update={
            "kafka_bootstrap": tansu.bootstrap,
            "trigger_topic": name,
            "dlq_topic": f"{name}-dlq",
            "consumer_group": f"{name}-group",
        }
    )
    tansu.create_topics([settings.trigger_topic, settings.dlq_topic], partitions=2)
    return settings


@pytest.fixture(scope="module")
def watchers(worker_settings: Settings) -> Watchers:
    from dagbridge.asset_watchers import served_watchers  # Airflow: after the session's environment is set

    return served_watchers(worker_settings)


async def every_record_position(settings: Settings, topic: str) -> set[tuple[int, int]]:
    ends = await end_offsets(settings.kafka_bootstrap, topic)
    return {(partition, offset) for partition, end in ends.items() for offset in range(end)}


async def assert_all_committed(settings: Settings, topic: str) -> None:
    committed = await committed_offsets(settings.kafka_bootstrap, settings.consumer_group, topic)
    assert committed == await end_offsets(settings.kafka_bootstrap, topic)


async def finished(client: Client, dag_id: str, topic: str, where: RecordMetadata) -> DagRunResult:
    """The result of the run the record at ``where`` starts, once the bridge started it and it ended."""
    workflow_id = dag_run_workflow_id(dag_id, asset_watcher_run_id(topic, where.partition, where.offset))

    async def started() -> None:
        assert workflow_id in await workflow_ids(client, workflow_id), f"{workflow_id} not started"

    await eventually(started, timeout=60)
    return await client.get_workflow_handle(workflow_id, result_type=DagRunResult).result()


def of_watcher(counts: Counter[tuple[str, _O]], name: str) -> dict[tuple[str, _O], int]:
    return {key: n for key, n in counts.items() if key[0] == name}


def xcom(result: DagRunResult, task_id: str) -> object:
    return next(ti.xcom.get("return_value") for ti in result.task_instances if ti.task_id == task_id)


def test_the_dags_folder_watchers_are_found_with_their_triggers(watchers: Watchers) -> None:
    specs = {watcher.spec.label: watcher.spec for watcher in watchers.watchers}
    assert set(specs) == {"example_kafka_watcher.kafka_watcher", "watched_orders.big_orders", "watched_batches.lines"}
    example = specs["example_kafka_watcher.kafka_watcher"]
    assert (example.topics, example.apply_function, example.kafka_config_id) == (
        [EXAMPLE_TOPIC],
        "example_dag_kafka_message_queue_trigger.apply_function",
        "kafka_default",
    )
    assert specs["watched_orders.big_orders"].apply_function_kwargs == {"minimum": 100}
    assert specs["watched_batches.lines"].apply_function is None


async def test_the_providers_example_dag_runs_once_per_message(
    settings: Settings, watchers: Watchers, temporal_client: Client
) -> None:
    sent = await produce(
        settings.kafka_bootstrap, EXAMPLE_TOPIC, [json.dumps({"reading": n}).encode() for n in range(3)]
    )
    async with running_bridge(settings, watchers=watchers) as bridge:
        for where in sent:
            result = await finished(temporal_client, "example_kafka_watcher", EXAMPLE_TOPIC, where)
            assert (result.state, [(ti.task_id, ti.state) for ti in result.task_instances]) == (
                "success",
                [("task", "success")],
            )
        await eventually(lambda: assert_all_committed(settings, EXAMPLE_TOPIC), timeout=30)
    expected = {
        dag_run_workflow_id("example_kafka_watcher", asset_watcher_run_id(EXAMPLE_TOPIC, partition, offset))
        for partition, offset in await every_record_position(settings, EXAMPLE_TOPIC)
    }
    started = await workflow_ids(temporal_client, "dagrun:example_kafka_watcher:")
    assert sorted(started) == sorted(expected), "not exactly one run per record of the topic"
    assert bridge.watcher_outcomes[("example_kafka_watcher.kafka_watcher", WatcherOutcome.EVENT)] == len(expected)


async def test_apply_function_filters_shapes_the_payload_and_a_redelivery_starts_nothing_new(
    settings: Settings, watchers: Watchers, temporal_client: Client
) -> None:
    orders = [
        {"order_id": "big", "amount": 150},
        {"order_id": "small", "amount": 5},  # apply_function returns None: not an event
        {"order_id": "broken"},  # apply_function raises KeyError: the DLQ, with the reason
        {"order_id": "edge", "amount": 100},
    ]
    sent = await produce(
        settings.kafka_bootstrap,
        ORDERS_TOPIC,
        [json.dumps(order).encode() for order in orders],
        keys=[order["order_id"].encode() for order in orders],
        headers=[[("region", b"eu")]] * len(orders),
    )
    big, _, broken, edge = sent
    async with running_bridge(settings, watchers=watchers) as bridge:
        results = {
            name: await finished(temporal_client, "watched_orders", ORDERS_TOPIC, where)
            for name, where in (("big", big), ("edge", edge))
        }
        await eventually(lambda: assert_all_committed(settings, ORDERS_TOPIC), timeout=30)
    # Every bridge serves every watcher of the folder: these counts are the orders watcher's.
    assert of_watcher(bridge.watcher_outcomes, "watched_orders.big_orders") == {
        ("watched_orders.big_orders", WatcherOutcome.EVENT): 2,
        ("watched_orders.big_orders", WatcherOutcome.FILTERED): 1,
        ("watched_orders.big_orders", WatcherOutcome.DEAD_LETTERED): 1,
    }
    for name, where in (("big", big), ("edge", edge)):
        order = orders[[o["order_id"] for o in orders].index(name)]
        # What Airflow's triggerer registers: extra {"from_trigger": True, "payload": <apply_function's result>}.
        assert xcom(results[name], "received") == [
            {
                "asset": "watched_orders",
                "extra": {
                    "from_trigger": True,
                    "payload": {
                        "order_id": name,
                        "amount": order["amount"],
                        "key": name,
                        "headers": {"region": "eu"},
                        "where": [ORDERS_TOPIC, where.partition, where.offset],
                        "timestamp_ms": where.timestamp,
                    },
                },
            }
        ]
    started = set(await workflow_ids(temporal_client, "dagrun:watched_orders:"))
    assert started == {
        dag_run_workflow_id("watched_orders", asset_watcher_run_id(ORDERS_TOPIC, w.partition, w.offset))
        for w in (big, edge)
    }
    dead = await read_records(settings.kafka_bootstrap, settings.dlq_topic, until=lambda records: len(records) >= 1)
    assert [(record.value, dict(record.headers)["dagbridge.error"].decode()) for record in dead] == [
        (
            json.dumps(orders[2]).encode(),
            "asset watcher watched_orders.big_orders: apply_function watched_orders.big_orders raised KeyError: "
            "'amount'",
        )
    ]
    assert (dict(dead[0].headers)["dagbridge.source.offset"], broken.offset) == (
        str(broken.offset).encode(),
        broken.offset,
    )

    # A group that never committed reads every record again: each run is found started.
    again = settings.model_copy(update={"consumer_group": unique("watchers-again")})
    async with running_bridge(again, watchers=watchers) as second:
        await eventually(lambda: assert_all_committed(again, ORDERS_TOPIC), timeout=30)
    assert of_watcher(second.watcher_runs, "watched_orders") == {("watched_orders", Outcome.DUPLICATE): 2}
    assert set(await workflow_ids(temporal_client, "dagrun:watched_orders:")) == started

    # dagbridge replay and reconcile map a watched topic's records as the bridge does.
    span = TopicRange(ORDERS_TOPIC)
    replayed = await replay(settings, NO_ROUTES, temporal_client, span, watchers=watchers)
    assert (dict(replayed.counts), len(replayed.problems)) == ({"duplicate": 2, "filtered": 1, "invalid": 1}, 1)
    assert "apply_function watched_orders.big_orders raised KeyError" in replayed.problems[0]
    reconciled = await reconcile(settings, NO_ROUTES, temporal_client, span, watchers=watchers)
    assert (dict(reconciled.counts), reconciled.problems) == ({"with run": 2, "filtered": 1, "invalid": 1}, [])


async def test_batching_hands_the_events_to_the_asset_schedule_which_consumes_each_once(
    settings: Settings, watchers: Watchers, temporal_client: Client
) -> None:
    """Batched, the events go through Airflow's asset queue (``assets:<dag_id>``): a run consumes the
    events of its window, and an event that came after the window was fixed waits for the next event,
    as in Airflow's scheduler. Every event is consumed by one run or still waiting, never both, never lost."""
    routes = parse_routes({"dags": {"watched_batches": {"asset_watcher_batching": True}}}, base=Path("."))
    lines = [f"line {n}" for n in range(5)]
    sent = await produce(settings.kafka_bootstrap, BATCHES_TOPIC, [line.encode() for line in lines])
    schedule = temporal_client.get_workflow_handle(asset_schedule_workflow_id("watched_batches"))

    async def consumed_or_waiting() -> list[str]:
        # The queue first: a run started meanwhile shows its events twice (retried), never nowhere.
        status = await schedule.query(ASSET_SCHEDULE_STATE_QUERY, result_type=AssetScheduleStatus)
        consumed: list[str] = []
        for workflow_id in await workflow_ids(temporal_client, "dagrun:watched_batches:"):
            handle = temporal_client.get_workflow_handle(workflow_id, result_type=DagRunResult)
            consumed += [
                event["extra"]["payload"] for event in cast(list[Any], xcom(await handle.result(), "received"))
            ]
        by_event_id = {
            asset_watcher_event_id(BATCHES_TOPIC, where.partition, where.offset, "watched_batches"): line
            for where, line in zip(sent, lines, strict=True)
        }
        waiting = [by_event_id[event_id] for event_id in status.pending_event_ids if event_id in by_event_id]
        assert consumed, "no run consumed an event"
        assert sorted(consumed + waiting) == sorted(lines)
        return consumed

    async with running_bridge(settings, routes=routes, watchers=watchers) as bridge:
        await eventually(lambda: assert_all_committed(settings, BATCHES_TOPIC), timeout=60)
        await eventually(consumed_or_waiting, timeout=120, interval=1)
    # No run of its own per message: every run was started by the DAG's asset schedule.
    started = await workflow_ids(temporal_client, "dagrun:watched_batches:")
    assert not [w for w in started if w.startswith(f"dagrun:watched_batches:asset_triggered__{BATCHES_TOPIC}-")]
    assert of_watcher(bridge.watcher_outcomes, "watched_batches.lines") == {
        ("watched_batches.lines", WatcherOutcome.EVENT): len(lines)
    }


@pytest.fixture(scope="module")
def idle_temporal(server_logs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporalDevServer]:
    """A server of its own on which no worker runs: started runs just wait, the test counts them."""
    with TemporalDevServer(server_logs, db_filename=tmp_path_factory.mktemp("watchers-idle") / "t.db") as server:
        yield server


async def test_a_bridge_killed_mid_stream_leaves_exactly_one_run_per_message(
    settings: Settings, idle_temporal: TemporalDevServer, server_logs: Path
) -> None:
    idle = settings.model_copy(
        update={"temporal_address": idle_temporal.address, "task_queue": NO_WORKER_QUEUE, "dags_folder": TEST_DAGS}
    )
    client = await temporal_client_for(idle_temporal.address)
    await produce(idle.kafka_bootstrap, EXAMPLE_TOPIC, [json.dumps({"reading": n}).encode() for n in range(100)])
    prefix = "dagrun:example_kafka_watcher:"

    # The first bridge commits nothing before it is killed: every run it started is delivered again
    # to the second, which must find it started, not start it twice.
    first = BridgeProcess(
        idle.model_copy(update={"commit_interval_seconds": 3600}), server_logs / "watchers-killed.log"
    )

    async def some_started() -> None:
        assert await workflow_ids(client, prefix)

    try:
        await eventually(some_started, timeout=120, interval=0.05)
    finally:
        first.kill()
    started_before_kill = len(await workflow_ids(client, prefix))
    committed = await committed_offsets(idle.kafka_bootstrap, idle.consumer_group, EXAMPLE_TOPIC)
    assert (sum(committed.values()), started_before_kill > 0) == (0, True), "the redelivery is what this tests"

    expected = {
        dag_run_workflow_id("example_kafka_watcher", asset_watcher_run_id(EXAMPLE_TOPIC, partition, offset))
        for partition, offset in await every_record_position(idle, EXAMPLE_TOPIC)
    }

    async def exactly_once() -> None:
        started = await workflow_ids(client, prefix)
        assert len(started) == len(set(started)), "a workflow ID ran twice"
        assert set(started) == expected, f"{len(expected - set(started))} missing"

    second = BridgeProcess(idle, server_logs / "watchers-restarted.log")
    try:
        await eventually(exactly_once, timeout=120, interval=1)
        await eventually(lambda: assert_all_committed(idle, EXAMPLE_TOPIC), timeout=30)
    finally:
        assert second.terminate(timeout=30) == 0
    await exactly_once()
