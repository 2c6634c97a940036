"""Fixtures and helpers of the Kafka-side tests: a real Tansu broker, a worker that publishes events.

Loaded by ``tests/conftest.py`` as a plugin, so session fixtures exist once per session.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord, RecordMetadata
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from bridge.consumer import TriggerBridge
from bridge.routes import NO_ROUTES, Routes
from bridge.watchers import NO_WATCHERS, Watchers
from infra.backoff import Backoff
from schemas.settings import Settings
from tests.servers import TansuBroker, TemporalDevServer

BRIDGE_DAGS = Path(__file__).parent / "bridge_dags"
EVENTS_QUEUE = "dagbridge-bridge-tests"
TASK_EVENTS_TOPIC = "bridge-tests-task-events"
RUN_EVENTS_TOPIC = "bridge-tests-run-events"
# Retries of the bridge and of publishes come back fast in tests; production backs off further.
FAST_BACKOFF = Backoff(initial_seconds=0.2, maximum_seconds=2.0)

_T = TypeVar("_T")
_names = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{next(_names)}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="session")
def tansu(server_logs: Path) -> Iterator[TansuBroker]:
    with TansuBroker(server_logs) as broker:
        broker.create_topics([TASK_EVENTS_TOPIC, RUN_EVENTS_TOPIC], partitions=2)
        yield broker


@pytest.fixture(scope="session")
def kafka_worker_settings(temporal_server: TemporalDevServer, tansu: TansuBroker) -> Settings:
    return Settings(
        temporal_address=temporal_server.address,
        task_queue=EVENTS_QUEUE,
        dags_folder=BRIDGE_DAGS,
        kafka_bootstrap=tansu.bootstrap,
        task_events_topic=TASK_EVENTS_TOPIC,
        run_events_topic=RUN_EVENTS_TOPIC,
        task_processes=2,
        task_heartbeat_timeout_seconds=5,
    )


@pytest.fixture(scope="session")
async def kafka_worker(kafka_worker_settings: Settings, temporal_client: Client) -> AsyncIterator[Settings]:
    """A worker on its own task queue that publishes events to the session's Tansu."""
    async with running_worker(kafka_worker_settings):
        yield kafka_worker_settings


@asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[None]:
    from dagbridge.worker import run_worker  # Airflow: not before the session's environment is set

    stop, ready = asyncio.Event(), asyncio.Event()
    running = asyncio.create_task(run_worker(settings, stop, ready))
    await asyncio.wait({running, asyncio.create_task(ready.wait())}, return_when=asyncio.FIRST_COMPLETED)
    if running.done():
        running.result()
    try:
        yield
    finally:
        stop.set()
        await running


@pytest.fixture
def bridge_settings(kafka_worker: Settings, tansu: TansuBroker) -> Settings:
    """Fresh trigger and DLQ topics and consumer group per test, the session worker's queue."""
    name = unique("triggers")
    settings = kafka_worker.model_copy(
        update={"trigger_topic": name, "dlq_topic": f"{name}-dlq", "consumer_group": f"{name}-group"}
    )
    tansu.create_topics([settings.trigger_topic, settings.dlq_topic], partitions=2)
    return settings


@asynccontextmanager
async def running_bridge(
    settings: Settings, routes: Routes = NO_ROUTES, watchers: Watchers = NO_WATCHERS
) -> AsyncIterator[TriggerBridge]:
    """An in-process bridge; leaving the block stops it as SIGTERM would."""
    bridge = TriggerBridge(settings, routes=routes, watchers=watchers, backoff=FAST_BACKOFF, drain_timeout_seconds=10)
    stop = asyncio.Event()
    running = asyncio.create_task(bridge.run(stop))
    try:
        yield bridge
    finally:
        stop.set()
        await running


async def temporal_client_for(address: str) -> Client:
    return await Client.connect(address, data_converter=pydantic_data_converter)


async def produce(
    bootstrap: str,
    topic: str,
    values: Sequence[bytes | None],
    *,
    keys: Sequence[bytes] | None = None,
    headers: Sequence[Sequence[tuple[str, bytes]]] | None = None,
    partition: int | None = None,
) -> list[RecordMetadata]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        return [
            await producer.send_and_wait(
                topic,
                value,
                key=keys[i] if keys else None,
                partition=partition,
                headers=list(headers[i]) if headers else None,
            )
            for i, value in enumerate(values)
        ]
    finally:
        await producer.stop()


async def read_records(
    bootstrap: str,
    topic: str,
    *,
    until: Callable[[list[ConsumerRecord[bytes, bytes]]], bool],
    timeout: float = 60,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of ``topic`` from its start, read until ``until(records)`` holds."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        deadline = time.monotonic() + timeout
        partitions: list[TopicPartition] = []
        while not partitions:
            await consumer.topics()
            partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            if not partitions:
                assert time.monotonic() < deadline, f"topic {topic} never appeared"
                await asyncio.sleep(0.2)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        while not until(records):
            assert time.monotonic() < deadline, f"{topic}: condition not met after {timeout} s, got {len(records)}"
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


async def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int = 2) -> dict[int, int]:
    """What the group committed per partition (0 where it committed nothing)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return {p: (await consumer.committed(TopicPartition(topic, p))) or 0 for p in range(partitions)}
    finally:
        await consumer.stop()


async def end_offsets(bootstrap: str, topic: str, partitions: int = 2) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def workflow_ids(client: Client, prefix: str) -> list[str]:
    """The ID of every execution (open or closed) whose workflow ID starts with ``prefix``."""
    return [execution.id async for execution in client.list_workflows(f"WorkflowId STARTS_WITH '{prefix}'")]


async def eventually(check: Callable[[], Awaitable[_T]], *, timeout: float, interval: float = 0.3) -> _T:
    """Await ``check`` until it returns without an AssertionError; re-raise the last one at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(interval)
