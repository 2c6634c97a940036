"""Soak mode of the benchmark: a steady trigger rate through the bridge for minutes, one worker.

Starts a Temporal dev server, a Tansu broker, ``dagbridge worker`` and ``dagbridge bridge``
processes, produces 3-task chain triggers at ``--rate`` per second for ``--minutes``, and prints:

- per minute: triggers produced, run events read, and trigger-to-run-event latency p50 / p99;
- the resident memory (RSS) of each process over time (the worker with its task processes, the
  bridge, the Temporal server, the broker), sampled every few seconds, and its slope per hour
  from a least-squares fit over the samples after the first minute (imports and caches fill
  then); memory that stays flat has a slope near zero;
- the history length and size of a sample of finished runs.

    python benchmarks/benchmark.py --mode soak [--minutes 10] [--rate 2]
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psutil
from aiokafka import AIOKafkaProducer
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from benchmarks.benchmark import ROOT, percentile
from benchmarks.kafka_mode import DAG_ID, PARTITIONS, RunEvents, dagbridge, service_env, trigger
from dagbridge.local_stack import TansuBroker, TemporalDevServer
from schemas.ids import dag_run_workflow_id
from schemas.settings import Settings

SAMPLE_SECONDS = 5.0
# The first minute fills imports, caches and pools: the slope is fitted after it.
WARM_UP_SECONDS = 60.0
# Runs still going when producing stops get this long to publish their run events.
DRAIN_SECONDS = 60.0
HISTORY_SAMPLE = 20


@dataclass
class SoakArgs:
    minutes: float
    rate: float
    task_processes: int


@dataclass
class Soak:
    started: float = field(default_factory=time.monotonic)
    produced: dict[str, float] = field(default_factory=dict)  # run id -> seconds since start
    latencies: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))  # minute -> seconds
    produced_per_minute: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    rss: dict[str, list[tuple[float, int]]] = field(default_factory=lambda: defaultdict(list))
    finished: list[str] = field(default_factory=list)  # run ids whose run event was read

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def tree_rss(process: psutil.Process) -> int:
    """RSS of a process and its children (the worker's task processes), bytes; 0 once it is gone."""
    total = 0
    try:
        for member in [process, *process.children(recursive=True)]:
            try:
                total += member.memory_info().rss
            except psutil.NoSuchProcess:
                continue
    except psutil.NoSuchProcess:
        return 0
    return total


async def sample_memory(soak: Soak, processes: dict[str, psutil.Process], stop: asyncio.Event) -> None:
    while not stop.is_set():
        at = soak.elapsed()
        for name, process in processes.items():
            soak.rss[name].append((at, tree_rss(process)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SAMPLE_SECONDS)


async def produce_steadily(
    soak: Soak, producer: AIOKafkaProducer, events: RunEvents, topic: str, args: SoakArgs
) -> list[asyncio.Task[None]]:
    """One trigger every 1/rate seconds, on a fixed schedule (a slow send does not shift the next)."""
    waits: list[asyncio.Task[None]] = []
    interval = 1.0 / args.rate
    count = int(args.minutes * 60 * args.rate)
    for index in range(count):
        delay = index * interval - soak.elapsed()
        if delay > 0:
            await asyncio.sleep(delay)
        run_id = f"soak__{uuid.uuid4().hex}"
        event = events.expect(run_id)
        produced_at = soak.elapsed()
        soak.produced[run_id] = produced_at
        soak.produced_per_minute[int(produced_at // 60)] += 1
        await producer.send_and_wait(topic, trigger(run_id))
        waits.append(asyncio.create_task(record_latency(soak, run_id, event, produced_at)))
    return waits


async def record_latency(soak: Soak, run_id: str, event: asyncio.Future[datetime], produced_at: float) -> None:
    await event
    soak.latencies[int(produced_at // 60)].append(soak.elapsed() - produced_at)
    soak.finished.append(run_id)


def slope_per_hour(samples: list[tuple[float, int]]) -> float | None:
    """MiB per hour, least squares over the samples after the warm-up; None with too few."""
    kept = [(at, rss) for at, rss in samples if at >= WARM_UP_SECONDS and rss > 0]
    if len(kept) < 3:
        return None
    slope, _ = statistics.linear_regression([at for at, _ in kept], [rss for _, rss in kept])
    return slope * 3600 / 2**20


async def history_sizes(client: Client, run_ids: list[str]) -> list[tuple[int, int]]:
    sizes = []
    for run_id in run_ids:
        description = await client.get_workflow_handle(dag_run_workflow_id(DAG_ID, run_id)).describe()
        sizes.append((description.raw_description.workflow_execution_info.history_length,
                      description.raw_description.workflow_execution_info.history_size_bytes))  # fmt: skip
    return sizes


def report(soak: Soak, args: SoakArgs, sizes: list[tuple[int, int]]) -> str:
    lines = [f"{'minute':>6} {'produced':>9} {'run events':>11} {'p50 ms':>9} {'p99 ms':>9}"]
    for minute in sorted(soak.produced_per_minute):
        taken = soak.latencies.get(minute, [])
        p50 = f"{percentile(taken, 50) * 1000:9.0f}" if taken else f"{'-':>9}"
        p99 = f"{percentile(taken, 99) * 1000:9.0f}" if taken else f"{'-':>9}"
        lines.append(f"{minute + 1:>6} {soak.produced_per_minute[minute]:>9} {len(taken):>11} {p50} {p99}")
    received = sum(len(taken) for taken in soak.latencies.values())
    lines.append(f"run events read: {received} of {len(soak.produced)} triggers")
    lines.append("")
    lines.append(f"{'process':<16} {'RSS at 1 min':>13} {'RSS at end':>11} {'slope MiB/h':>12}")
    for name, samples in soak.rss.items():
        first = next((rss for at, rss in samples if at >= WARM_UP_SECONDS), samples[0][1])
        last = samples[-1][1]
        slope = slope_per_hour(samples)
        shown = f"{slope:12.1f}" if slope is not None else f"{'-':>12}"
        lines.append(f"{name:<16} {first / 2**20:10.1f} MiB {last / 2**20:8.1f} MiB {shown}")
    if sizes:
        lengths, sizes_bytes = [length for length, _ in sizes], [size for _, size in sizes]
        lines.append("")
        lines.append(
            f"history of {len(sizes)} finished runs: {statistics.median(lengths):.0f} events, "
            f"{statistics.median(sizes_bytes) / 1024:.1f} KiB (median), at most {max(lengths)} events"
        )
    lines.append(
        f"({args.minutes:g} min at {args.rate:g} triggers/s, {PARTITIONS} partitions, "
        f"{args.task_processes} task processes, {os.cpu_count()} CPUs; RSS sampled every {SAMPLE_SECONDS:g} s)"
    )
    return "\n".join(lines)


async def run(settings: Settings, logs: Path, args: SoakArgs, servers: dict[str, int]) -> None:
    env = service_env(
        {**os.environ, "AIRFLOW_HOME": str(logs / "airflow-home")},
        temporal_address=settings.temporal_address,
        kafka_bootstrap=settings.kafka_bootstrap,
        dags_folder=str(ROOT / "benchmarks" / "dags"),
        task_processes=str(args.task_processes),
        consumer_group=f"soak-{uuid.uuid4().hex}",
        # The runs still going when the soak ends are dropped with it: no grace period to wait out.
        shutdown_grace_seconds="0",
    )
    client = await Client.connect(settings.temporal_address, data_converter=pydantic_data_converter)
    with (
        dagbridge("worker", env, logs / "dagbridge-worker.log") as worker,
        dagbridge("bridge", env, logs / "bridge.log") as bridge,
    ):
        processes = {
            "worker": psutil.Process(worker.pid),
            "bridge": psutil.Process(bridge.pid),
            **{name: psutil.Process(pid) for name, pid in servers.items()},
        }
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
        await producer.start()
        soak = Soak()
        stop = asyncio.Event()
        sampling = asyncio.create_task(sample_memory(soak, processes, stop))
        try:
            async with RunEvents(settings.kafka_bootstrap, settings.run_events_topic) as events:
                waits = await produce_steadily(soak, producer, events, settings.trigger_topic, args)
                _, late = await asyncio.wait(waits, timeout=DRAIN_SECONDS) if waits else (set(), set())
                for task in late:
                    task.cancel()
        finally:
            stop.set()
            await sampling
            await producer.stop()
        for name, service in (("worker", worker), ("bridge", bridge)):
            if service.poll() is not None:
                raise RuntimeError(f"the {name} exited during the soak (code {service.returncode}): see {logs}")
        print(report(soak, args, await history_sizes(client, soak.finished[:HISTORY_SAMPLE])))


def main(args: SoakArgs) -> None:
    logs = Path(tempfile.mkdtemp(prefix="dagbridge-bench-soak-"))
    with TemporalDevServer(logs) as server, TansuBroker(logs) as broker:
        settings = Settings(temporal_address=server.address, kafka_bootstrap=broker.bootstrap)
        broker.create_topics(
            [settings.trigger_topic, settings.dlq_topic, settings.task_events_topic, settings.run_events_topic],
            partitions=PARTITIONS,
        )
        servers = {"temporal server": server.pid, "broker": broker.pid}
        asyncio.run(run(settings, logs, args, {name: pid for name, pid in servers.items() if pid is not None}))
        print(f"(server, worker and bridge logs in {logs})")
