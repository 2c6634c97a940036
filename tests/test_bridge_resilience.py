"""The bridge killed, stopped, or cut off from Temporal: no trigger lost, none run twice.

These tests only count workflow starts, so they use a Temporal server of their own on
which no worker runs: the started runs just wait, and hundreds of them cost nothing.
Its SQLite file lets the server be stopped and started again with its state intact.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.structs import RecordMetadata
from temporalio.client import Client

from bridge.consumer import Outcome
from schemas.settings import Settings
from tests.bridge_fixtures import (
    committed_offsets,
    end_offsets,
    eventually,
    produce,
    running_bridge,
    temporal_client_for,
    unique,
    workflow_ids,
)
from tests.processes import BridgeProcess
from tests.servers import TansuBroker, TemporalDevServer

NO_WORKER_QUEUE = "dagbridge-tests-nobody-polls"


@pytest.fixture(scope="module")
def idle_temporal(server_logs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporalDevServer]:
    database = tmp_path_factory.mktemp("idle-temporal") / "temporal.db"
    with TemporalDevServer(server_logs, db_filename=database) as server:
        yield server


@pytest.fixture
def settings(idle_temporal: TemporalDevServer, tansu: TansuBroker) -> Settings:
    name = unique("resilience")
    settings = Settings(
        temporal_address=idle_temporal.address,
        kafka_bootstrap=tansu.bootstrap,
        task_queue=NO_WORKER_QUEUE,
        trigger_topic=name,
        dlq_topic=f"{name}-dlq",
        consumer_group=f"{name}-group",
    )
    tansu.create_topics([settings.trigger_topic, settings.dlq_topic], partitions=2)
    return settings


def run_ids(settings: Settings, sent: list[RecordMetadata]) -> set[str]:
    return {f"dagrun:bridge_noop:kafka__{settings.trigger_topic}-{m.partition}-{m.offset}" for m in sent}


async def assert_started_once(client: Client, settings: Settings, expected: set[str]) -> None:
    started = await workflow_ids(client, f"dagrun:bridge_noop:kafka__{settings.trigger_topic}-")
    assert len(started) == len(set(started)), "a workflow ID ran twice"
    assert set(started) == expected, f"{len(expected - set(started))} missing"


async def assert_all_committed(settings: Settings) -> None:
    committed = await committed_offsets(settings.kafka_bootstrap, settings.consumer_group, settings.trigger_topic)
    assert committed == await end_offsets(settings.kafka_bootstrap, settings.trigger_topic)


def noop_triggers(count: int) -> list[bytes]:
    # No run_id or idempotency_key: the run ID comes from the record's own position, so a
    # redelivery must produce exactly the same one.
    return [json.dumps({"schema_version": 1, "dag_id": "bridge_noop", "conf": {"n": n}}).encode() for n in range(count)]


async def test_bridge_killed_with_starts_in_flight_then_restarted_starts_each_run_once(
    settings: Settings, idle_temporal: TemporalDevServer, server_logs: Path
) -> None:
    client = await temporal_client_for(idle_temporal.address)
    sent = await produce(settings.kafka_bootstrap, settings.trigger_topic, noop_triggers(200))
    expected = run_ids(settings, sent)
    prefix = f"dagrun:bridge_noop:kafka__{settings.trigger_topic}-"

    # The first bridge commits nothing before it dies: the runs it started are all redelivered to
    # the second, which must find them started, not start them again.
    first = BridgeProcess(
        settings.model_copy(update={"commit_interval_seconds": 3600}), server_logs / "bridge-killed.log"
    )

    async def some_started() -> int:
        started = len(await workflow_ids(client, prefix))
        assert started > 0
        return started

    await eventually(some_started, timeout=60, interval=0.05)
    first.kill()
    started_before_kill = len(await workflow_ids(client, prefix))
    committed = sum(
        (await committed_offsets(settings.kafka_bootstrap, settings.consumer_group, settings.trigger_topic)).values()
    )
    assert (committed, started_before_kill > 0) == (0, True), "the redelivery of started runs is what this tests"

    second = BridgeProcess(settings, server_logs / "bridge-restarted.log")
    try:
        await eventually(lambda: assert_started_once(client, settings, expected), timeout=90, interval=1)
        await eventually(lambda: assert_all_committed(settings), timeout=30)
    finally:
        assert second.terminate(timeout=30) == 0
    await assert_started_once(client, settings, expected)


async def test_temporal_down_mid_stream_pauses_the_bridge_and_loses_nothing(
    settings: Settings, idle_temporal: TemporalDevServer
) -> None:
    client = await temporal_client_for(idle_temporal.address)
    sent: list[RecordMetadata] = []
    async with running_bridge(settings):
        sent += await produce(settings.kafka_bootstrap, settings.trigger_topic, noop_triggers(20))
        await eventually(lambda: assert_started_once(client, settings, run_ids(settings, sent)), timeout=30)
        await eventually(lambda: assert_all_committed(settings), timeout=10)

        await asyncio.to_thread(idle_temporal.stop)
        started = asyncio.get_running_loop().time()
        during = await produce(settings.kafka_bootstrap, settings.trigger_topic, noop_triggers(20))
        await asyncio.sleep(20 - (asyncio.get_running_loop().time() - started))
        committed = await committed_offsets(settings.kafka_bootstrap, settings.consumer_group, settings.trigger_topic)
        assert sum(committed.values()) == 20, "a trigger was committed while Temporal was down"
        await asyncio.to_thread(idle_temporal.start)

        sent += during
        sent += await produce(settings.kafka_bootstrap, settings.trigger_topic, noop_triggers(20))
        client = await temporal_client_for(idle_temporal.address)
        await eventually(lambda: assert_started_once(client, settings, run_ids(settings, sent)), timeout=60, interval=1)
        await eventually(lambda: assert_all_committed(settings), timeout=10)


async def test_sigterm_finishes_commits_and_exits_cleanly(
    settings: Settings, idle_temporal: TemporalDevServer, server_logs: Path
) -> None:
    client = await temporal_client_for(idle_temporal.address)
    sent = await produce(settings.kafka_bootstrap, settings.trigger_topic, noop_triggers(10))
    bridge = BridgeProcess(settings, server_logs / "bridge-terminated.log")
    try:
        await eventually(lambda: assert_started_once(client, settings, run_ids(settings, sent)), timeout=60)
    finally:
        assert bridge.terminate(timeout=30) == 0
    await assert_all_committed(settings)


async def test_two_bridges_in_one_group_share_the_work_across_a_rebalance(
    settings: Settings, idle_temporal: TemporalDevServer
) -> None:
    client = await temporal_client_for(idle_temporal.address)

    async def stream(count: int) -> list[RecordMetadata]:
        sent = []
        for _ in range(count // 10):
            sent += await produce(settings.kafka_bootstrap, settings.trigger_topic, noop_triggers(10))
            await asyncio.sleep(0.5)
        return sent

    async with running_bridge(settings) as first:
        sent = await stream(20)
        await eventually(lambda: assert_started_once(client, settings, run_ids(settings, sent)), timeout=30)
        # The second member joins while triggers keep coming: the first one's partitions are
        # revoked mid-stream, and what it had started must be committed, not started again.
        async with running_bridge(settings) as second:
            # A join takes Tansu about 5 s, the stream lasts about 10 s.
            sent += await stream(200)
            await eventually(lambda: assert_started_once(client, settings, run_ids(settings, sent)), timeout=60)
            await eventually(lambda: assert_all_committed(settings), timeout=30)
    assert Outcome.DUPLICATE not in first.outcomes + second.outcomes, "a revoked partition was delivered again"
    assert first.outcomes[Outcome.STARTED] + second.outcomes[Outcome.STARTED] == 220
    assert second.outcomes[Outcome.STARTED] > 0, "the second bridge was never given a partition"
