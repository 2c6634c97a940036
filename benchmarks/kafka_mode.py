"""Kafka mode of the benchmark: the bridge next to plain ``start_workflow`` calls, in the same run.

Starts a Temporal dev server, a Tansu broker, a ``dagbridge worker`` (publishing events to Tansu)
and ``dagbridge bridge`` processes, then prints:

- start latency: trigger produced (acks=all) -> the run's workflow started (Temporal's start
  time), next to start_workflow requested -> the same; the bridge's own share of the latency
- first-task latency: the same starting points -> first task try started
- run-event latency: the same starting points -> the run event read from the run-events topic
- runs started/s: N triggers already on a topic, drained by a fresh bridge, next to N plain
  ``start_workflow`` calls with the bridge's bound on starts in flight (max_in_flight_starts);
  in alternating rounds (plain, bridge, plain, ..., plain), the median of each side

    python benchmarks/benchmark.py --mode kafka [--runs 20] [--triggers 500] [--rounds 3]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from benchmarks.benchmark import DAG_QUEUE, ROOT, ms
from dagbridge.local_stack import TansuBroker, TemporalDevServer
from infra.temporal import start_dag_run
from schemas.ids import dag_run_workflow_id
from schemas.messages import SCHEMA_VERSION, RunEvent, TriggerMessage
from schemas.runs import DagRunRequest, DagRunResult, RunOptions
from schemas.settings import Settings, env_var

DAG_ID = "bench_chain"
# Several partitions, as in production: the bridge fetches and commits per partition.
PARTITIONS = 4
# No worker polls the rate phase's task queues: it measures starts, not the runs they begin,
# and a worker running them would take CPU from the starts on a small machine. Each round has
# its own queue (to count its runs) and the bridge's its own topic (a new group reads it all).
RATE_TOPIC = "bench-rate-triggers"
BRIDGE_IDLE_QUEUE = "bench-idle-bridge"
PLAIN_IDLE_QUEUE = "bench-idle-plain"
# The first trigger waits for the worker to import Airflow and for Tansu's first JoinGroup of
# the group (about 5 s).
FIRST_RUN_TIMEOUT_SECONDS = 120.0
RUN_TIMEOUT_SECONDS = 60.0
DRAIN_TIMEOUT_SECONDS = 300.0
COUNT_POLL_SECONDS = 0.5

Submit = Callable[[str], Awaitable[object]]


@dataclass
class KafkaArgs:
    runs: int
    triggers: int
    rounds: int
    task_processes: int


@dataclass
class Latency:
    start_seconds: float
    first_task_seconds: float
    run_event_seconds: float


@dataclass
class KafkaFigures:
    via_kafka: list[Latency]
    direct: list[Latency]
    bridge_starts_per_second: list[float]
    plain_starts_per_second: list[float]


def dag_run_request(run_id: str, task_queue: str) -> DagRunRequest:
    return DagRunRequest(
        dag_id=DAG_ID,
        run_id=run_id,
        logical_date=datetime.now(UTC),
        options=RunOptions(default_task_queue=task_queue),
    )


def trigger(run_id: str) -> bytes:
    message = TriggerMessage(schema_version=SCHEMA_VERSION, dag_id=DAG_ID, run_id=run_id)
    return message.model_dump_json(exclude_none=True).encode()


class RunEvents:
    """When this process read each run event, by run ID, for the runs someone waits for."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        # Read from the start without a group: no position to resolve before the first
        # trigger, and events of runs nobody waits for are skipped.
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
        self._topic = topic
        self._waiting: dict[str, asyncio.Future[datetime]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        await self._consumer.start()
        await self._consumer.topics()  # metadata of every topic, so the partitions are known
        partitions = self._consumer.partitions_for_topic(self._topic) or set()
        self._consumer.assign([TopicPartition(self._topic, p) for p in partitions])
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self._consumer.stop()

    def expect(self, run_id: str) -> asyncio.Future[datetime]:
        self._waiting[run_id] = future = asyncio.get_running_loop().create_future()
        return future

    async def _read(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=1000)
            received = datetime.now(UTC)
            for record in (r for records in batches.values() for r in records):
                future = self._waiting.pop(RunEvent.model_validate_json(record.value).run_id, None)
                if future is not None and not future.done():
                    future.set_result(received)


async def latency(client: Client, events: RunEvents, submit: Submit, timeout: float) -> Latency:
    run_id = f"bench__{uuid.uuid4().hex}"
    event = events.expect(run_id)
    submitted = datetime.now(UTC)
    await submit(run_id)
    received = await asyncio.wait_for(event, timeout)
    # The run event came from the workflow, so it exists and its result is ready.
    handle = client.get_workflow_handle(dag_run_workflow_id(DAG_ID, run_id), result_type=DagRunResult)
    result = await handle.result()
    assert result.state == "success", result
    started = (await handle.describe()).start_time
    first_task = min(ti.start_date for ti in result.task_instances if ti.start_date is not None)

    def since_submitted(moment: datetime) -> float:
        return (moment - submitted).total_seconds()

    return Latency(since_submitted(started), since_submitted(first_task), since_submitted(received))


async def measure_latency(
    client: Client, producer: AIOKafkaProducer, events: RunEvents, trigger_topic: str, runs: int
) -> tuple[list[Latency], list[Latency]]:
    async def via_kafka(run_id: str) -> None:
        await producer.send_and_wait(trigger_topic, trigger(run_id))

    async def direct(run_id: str) -> None:
        await start_dag_run(client, dag_run_request(run_id, DAG_QUEUE), DAG_QUEUE)

    # Warm-up: the bridge has joined its group once the first trigger ran; caches, pool processes.
    await latency(client, events, via_kafka, FIRST_RUN_TIMEOUT_SECONDS)
    for submit in (via_kafka, direct, via_kafka, direct):
        await latency(client, events, submit, RUN_TIMEOUT_SECONDS)
    samples: dict[Submit, list[Latency]] = {via_kafka: [], direct: []}
    # Alternating, so a drift of the machine's load over the run affects both sides alike.
    for _ in range(runs):
        for submit, taken in samples.items():
            taken.append(await latency(client, events, submit, RUN_TIMEOUT_SECONDS))
    return samples[via_kafka], samples[direct]


async def starts_per_second(client: Client, task_queue: str, count: int) -> float:
    """Starts/s between the first and the last start of ``count`` runs, as Temporal recorded them.

    Server start times measure the bridge and plain calls alike, and leave out what comes
    before the first start (the bridge joining its group).
    """
    query = f"TaskQueue = '{task_queue}'"
    deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
    while (found := (await client.count_workflows(query)).count) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{found} of {count} runs on {task_queue} started after {DRAIN_TIMEOUT_SECONDS:.0f} s")
        await asyncio.sleep(COUNT_POLL_SECONDS)
    starts = [execution.start_time async for execution in client.list_workflows(query)]
    return (count - 1) / (max(starts) - min(starts)).total_seconds()


async def plain_starts(client: Client, count: int, concurrency: int, task_queue: str) -> float:
    slots = asyncio.Semaphore(concurrency)

    async def start(index: int) -> None:
        async with slots:
            await start_dag_run(client, dag_run_request(f"{task_queue}__{index}", task_queue), task_queue)

    await asyncio.gather(*(start(i) for i in range(count)))
    return await starts_per_second(client, task_queue, count)


async def produce_rate_triggers(bootstrap: str, topic: str, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        sent = [await producer.send(topic, trigger(f"{topic}__{i}")) for i in range(count)]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


@contextmanager
def dagbridge(command: str, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``dagbridge <command>`` as a child process, stopped with SIGTERM as in production."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "dagbridge.cli", command], env=env, stdout=output, stderr=subprocess.STDOUT, cwd=ROOT
        )
        try:
            yield process
        finally:
            process.terminate()
            process.wait(timeout=30)


def service_env(base: dict[str, str], **settings: str) -> dict[str, str]:
    return {**base, **{env_var(name): value for name, value in settings.items()}}


def rates(values: list[float]) -> str:
    return " ".join(f"{value:.0f}" for value in values)


def report(figures: KafkaFigures, runs: int, triggers: int, concurrency: int) -> str:
    def rows(label: str, pick: Callable[[Latency], float]) -> str:
        return f"{label:<34}{ms([pick(s) for s in figures.via_kafka])}   {ms([pick(s) for s in figures.direct])}"

    bridge = statistics.median(figures.bridge_starts_per_second)
    plain = statistics.median(figures.plain_starts_per_second)
    lines = [
        f"{'':<34}{'via Kafka bridge':>17}   {'start_workflow':>17}",
        f"{'(milliseconds)':<34}{'p50':>8} {'p90':>8}   {'p50':>8} {'p90':>8}",
        rows("3-task chain: start latency", lambda s: s.start_seconds),
        rows("3-task chain: first-task latency", lambda s: s.first_task_seconds),
        rows("3-task chain: run-event latency", lambda s: s.run_event_seconds),
        f"{f'{triggers} runs: starts/s (median)':<34}{bridge:17.1f}   {plain:17.1f}",
        f"{'bridge / plain starts/s':<34}{bridge / plain:17.1%}   {'(target >= 90%)':>17}",
        f"({runs} sequential chain runs per side, timed from produce or start_workflow; "
        f"{concurrency} starts in flight; {PARTITIONS} partitions; {os.cpu_count()} CPUs)",
        f"(starts/s by round: bridge {rates(figures.bridge_starts_per_second)}; "
        f"plain {rates(figures.plain_starts_per_second)})",
    ]
    return "\n".join(lines)


async def measure_with_worker(
    client: Client, base_env: dict[str, str], settings: Settings, logs: Path, runs: int
) -> tuple[list[Latency], list[Latency]]:
    env = service_env(base_env, task_queue=DAG_QUEUE, consumer_group=f"bench-latency-{uuid.uuid4().hex}")
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    with dagbridge("worker", env, logs / "dagbridge-worker.log"), dagbridge("bridge", env, logs / "bridge.log"):
        await producer.start()
        try:
            async with RunEvents(settings.kafka_bootstrap, settings.run_events_topic) as events:
                return await measure_latency(client, producer, events, settings.trigger_topic, runs)
        finally:
            await producer.stop()


async def measure_bridge_starts(
    client: Client, base_env: dict[str, str], settings: Settings, logs: Path, *, triggers: int, index: int
) -> float:
    topic, task_queue = f"{RATE_TOPIC}-{index}", f"{BRIDGE_IDLE_QUEUE}-{index}"
    # All triggers wait on the topic before the bridge starts: its rate, not the producer's, is measured.
    await produce_rate_triggers(settings.kafka_bootstrap, topic, triggers)
    env = service_env(
        base_env, task_queue=task_queue, trigger_topic=topic, consumer_group=f"bench-rate-{uuid.uuid4().hex}"
    )
    with dagbridge("bridge", env, logs / f"bridge-rate-{index}.log"):
        return await starts_per_second(client, task_queue, triggers)


async def run(settings: Settings, logs: Path, args: KafkaArgs) -> KafkaFigures:
    base_env = service_env(
        {**os.environ, "AIRFLOW_HOME": str(logs / "airflow-home")},
        temporal_address=settings.temporal_address,
        kafka_bootstrap=settings.kafka_bootstrap,
        dags_folder=str(ROOT / "benchmarks" / "dags"),
        task_processes=str(args.task_processes),
        # The plain calls below use the same bound, whatever the environment set it to.
        max_in_flight_starts=str(settings.max_in_flight_starts),
    )
    client = await Client.connect(settings.temporal_address, data_converter=pydantic_data_converter)
    via_kafka, direct = await measure_with_worker(client, base_env, settings, logs, args.runs)
    # The worker and the latency bridge have stopped: the rates share the machine with nothing else
    # of this run. Alternating rounds with plain calls first and last, because every start leaves a
    # pending workflow on the server and other load on the machine comes and goes: both should
    # weigh on the two sides alike.
    bridge: list[float] = []
    plain = [await plain_starts(client, args.triggers, settings.max_in_flight_starts, f"{PLAIN_IDLE_QUEUE}-0")]
    for index in range(args.rounds):
        bridge.append(
            await measure_bridge_starts(client, base_env, settings, logs, triggers=args.triggers, index=index)
        )
        plain.append(
            await plain_starts(client, args.triggers, settings.max_in_flight_starts, f"{PLAIN_IDLE_QUEUE}-{index + 1}")
        )
    return KafkaFigures(via_kafka, direct, bridge, plain)


def main(args: KafkaArgs) -> None:
    logs = Path(tempfile.mkdtemp(prefix="dagbridge-bench-kafka-"))
    with TemporalDevServer(logs) as server, TansuBroker(logs) as broker:
        settings = Settings(temporal_address=server.address, kafka_bootstrap=broker.bootstrap)
        broker.create_topics(
            [settings.trigger_topic, settings.dlq_topic, settings.task_events_topic, settings.run_events_topic,
             *(f"{RATE_TOPIC}-{index}" for index in range(args.rounds))],
            partitions=PARTITIONS,
        )  # fmt: skip
        figures = asyncio.run(run(settings, logs, args))
        print(report(figures, args.runs, args.triggers, settings.max_in_flight_starts))
        print(f"(server, worker and bridge logs in {logs})")
