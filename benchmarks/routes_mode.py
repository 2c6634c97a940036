"""Routes mode of the benchmark: routed records/s next to the plain trigger topic's, in the same run.

Starts a Temporal dev server and a Tansu broker, then in alternating rounds (plain, routed, plain,
..., plain) lets a fresh ``dagbridge bridge`` drain N records already on a topic: trigger messages
on the trigger topic, or business records on a topic read by a route with a JMESPath filter (which
every record passes, so both sides start N runs) and a conf mapping of four fields (paths and a
Jinja template). Prints the median starts/s of each side and their ratio. No worker runs: starts
are measured, not the runs they begin.

    python benchmarks/benchmark.py --mode routes [--triggers 500] [--rounds 3]
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import uuid
from pathlib import Path

import yaml
from aiokafka import AIOKafkaProducer
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from benchmarks.kafka_mode import DAG_ID, PARTITIONS, dagbridge, rates, service_env, starts_per_second, trigger
from dagbridge.local_stack import TansuBroker, TemporalDevServer
from schemas.settings import Settings


def routes_document(topic: str) -> dict[str, object]:
    return {
        "routes": [
            {
                "name": "bench-orders",
                "topic": topic,
                "filter": "payload.amount >= `0` && headers.source == 'bench'",
                "dag_id": DAG_ID,
                "run_id": {"path": "payload.order_id"},
                "conf": {
                    "order_id": {"path": "payload.order_id"},
                    "customer": {"path": "payload.customer.name"},
                    "amount": {"path": "payload.amount"},
                    "label": {"template": "{{ payload.customer.name }} paid {{ payload.amount }}"},
                },
            }
        ]
    }


def business_record(topic: str, index: int) -> bytes:
    return json.dumps(
        {"order_id": f"{topic}__{index}", "amount": index, "customer": {"name": f"c{index % 97}"}, "lines": [1, 2, 3]}
    ).encode()


async def produce(bootstrap: str, topic: str, values: list[bytes], headers: list[tuple[str, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        sent = [await producer.send(topic, value, headers=headers) for value in values]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def drain(client: Client, env: dict[str, str], log: Path, task_queue: str, count: int) -> float:
    with dagbridge("bridge", env, log):
        return await starts_per_second(client, task_queue, count)


async def run(
    settings: Settings, broker: TansuBroker, logs: Path, triggers: int, rounds: int
) -> tuple[list[float], list[float]]:
    base_env = service_env(
        {**os.environ, "AIRFLOW_HOME": str(logs / "airflow-home")},
        temporal_address=settings.temporal_address,
        kafka_bootstrap=settings.kafka_bootstrap,
    )
    client = await Client.connect(settings.temporal_address, data_converter=pydantic_data_converter)
    plain: list[float] = []
    routed: list[float] = []

    async def plain_round(index: int) -> None:
        topic, queue = f"bench-plain-{index}", f"bench-plain-queue-{index}"
        broker.create_topics([topic], partitions=PARTITIONS)
        await produce(settings.kafka_bootstrap, topic, [trigger(f"{topic}__{i}") for i in range(triggers)], [])
        env = service_env(base_env, task_queue=queue, trigger_topic=topic, consumer_group=f"g-{uuid.uuid4().hex}")
        plain.append(await drain(client, env, logs / f"bridge-{topic}.log", queue, triggers))

    async def routed_round(index: int) -> None:
        topic, queue = f"bench-orders-{index}", f"bench-routed-queue-{index}"
        idle = f"bench-idle-triggers-{index}"
        broker.create_topics([topic, idle], partitions=PARTITIONS)
        values = [business_record(topic, i) for i in range(triggers)]
        await produce(settings.kafka_bootstrap, topic, values, [("source", b"bench")])
        routes_file = logs / f"routes-{index}.yaml"
        routes_file.write_text(yaml.safe_dump(routes_document(topic)))
        env = service_env(
            base_env,
            task_queue=queue,
            trigger_topic=idle,
            routes_file=str(routes_file),
            consumer_group=f"g-{uuid.uuid4().hex}",
        )
        routed.append(await drain(client, env, logs / f"bridge-{topic}.log", queue, triggers))

    await plain_round(0)
    for index in range(rounds):
        await routed_round(index)
        await plain_round(index + 1)
    return plain, routed


def main(triggers: int, rounds: int) -> None:
    logs = Path(tempfile.mkdtemp(prefix="dagbridge-bench-routes-"))
    with TemporalDevServer(logs) as server, TansuBroker(logs) as broker:
        settings = Settings(temporal_address=server.address, kafka_bootstrap=broker.bootstrap)
        plain, routed = asyncio.run(run(settings, broker, logs, triggers, rounds))
    ratio = statistics.median(routed) / statistics.median(plain)
    print(f"{f'{triggers} records: starts/s (median)':<40}{'routed':>10}{'trigger topic':>16}")
    print(f"{'':<40}{statistics.median(routed):10.1f}{statistics.median(plain):16.1f}")
    print(f"{'routed / trigger-topic starts/s':<40}{ratio:10.1%}")
    print(f"(filter + 4-field conf mapping; {PARTITIONS} partitions; {os.cpu_count()} CPUs; by round: routed "
          f"{rates(routed)}; plain {rates(plain)}; logs in {logs})")  # fmt: skip
