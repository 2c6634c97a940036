"""Latency and throughput of dagbridge, next to plain Temporal measured in the same run.

Starts a Temporal dev server, a ``dagbridge worker`` and a baseline worker (the same DAG shapes
as plain activities, benchmarks/baseline.py) as separate processes, then prints:

- run latency: workflow start requested -> result received
- first-task latency: workflow start requested -> first task try started
- inter-task latency: a task try ended -> the next task of the chain started
- DAG runs/s and tasks/s with many runs in flight at once

    python benchmarks/benchmark.py [--runs 20] [--concurrency 20]

``--mode kafka`` measures the Kafka bridge instead (benchmarks/kafka_mode.py), ``--mode scale``
the cost per task as a DAG grows (benchmarks/scale_mode.py), ``--mode schedule`` the delay from
a tick to the first task with 200 DAGs scheduled on one worker (benchmarks/schedule_mode.py),
``--mode routes`` routed records/s against the plain trigger topic's (benchmarks/routes_mode.py),
``--mode deferrable`` deferred tasks waiting on the triggerer (benchmarks/deferrable_mode.py),
``--mode soak`` memory and latency over minutes at a steady trigger rate (benchmarks/soak_mode.py).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.baseline import BaselineChain, BaselineFanOut  # noqa: E402
from dagbridge.local_stack import TemporalDevServer  # noqa: E402
from infra.temporal import start_dag_run  # noqa: E402
from schemas.runs import DagRunRequest, DagRunResult, RunOptions  # noqa: E402

DAG_QUEUE = "bench-dagbridge"
BASELINE_QUEUE = "bench-baseline"
Span = tuple[datetime, datetime]


@dataclass
class Sample:
    run_seconds: float
    first_task_seconds: float
    inter_task_seconds: list[float] = field(default_factory=list)


@dataclass
class Figures:
    chain: list[Sample]
    fan_out: list[Sample]
    runs_per_second: float
    tasks_per_second: float


def sample(submitted: datetime, finished: datetime, spans: list[Span], chained: bool) -> Sample:
    spans = sorted(spans)
    return Sample(
        run_seconds=(finished - submitted).total_seconds(),
        first_task_seconds=(spans[0][0] - submitted).total_seconds(),
        inter_task_seconds=[(b[0] - a[1]).total_seconds() for a, b in itertools.pairwise(spans)] if chained else [],
    )


class DagbridgeTarget:
    def __init__(self, client: Client) -> None:
        self.client = client

    async def run(self, dag_id: str) -> tuple[datetime, datetime, list[Span]]:
        request = DagRunRequest(
            dag_id=dag_id,
            run_id=f"bench__{uuid.uuid4().hex}",
            logical_date=datetime.now(UTC),
            options=RunOptions(default_task_queue=DAG_QUEUE),
        )
        submitted = datetime.now(UTC)
        handle = await start_dag_run(self.client, request, DAG_QUEUE)
        result: DagRunResult = await handle.result()
        finished = datetime.now(UTC)
        assert result.state == "success", result
        return submitted, finished, [(ti.start_date, ti.end_date) for ti in result.task_instances]

    async def chain(self) -> tuple[datetime, datetime, list[Span]]:
        return await self.run("bench_chain")

    async def fan_out(self) -> tuple[datetime, datetime, list[Span]]:
        return await self.run("bench_fan_out")


class BaselineTarget:
    def __init__(self, client: Client) -> None:
        self.client = client

    async def _run(self, workflow_run, arg: int) -> tuple[datetime, datetime, list[Span]]:
        submitted = datetime.now(UTC)
        spans = await self.client.execute_workflow(
            workflow_run, arg, id=f"baseline-{uuid.uuid4().hex}", task_queue=BASELINE_QUEUE
        )
        finished = datetime.now(UTC)
        return submitted, finished, [(started, ended) for _, started, ended in spans]

    async def chain(self) -> tuple[datetime, datetime, list[Span]]:
        return await self._run(BaselineChain.run, 3)

    async def fan_out(self) -> tuple[datetime, datetime, list[Span]]:
        return await self._run(BaselineFanOut.run, 50)


async def measure(targets: list[DagbridgeTarget | BaselineTarget], runs: int, concurrency: int) -> list[Figures]:
    """Sample the targets in turn, so a change in the machine's load affects them alike."""
    chains: list[list[Sample]] = [[] for _ in targets]
    fan_outs: list[list[Sample]] = [[] for _ in targets]
    for target in targets:
        await target.chain()  # warm-up: caches, pool processes, sticky queues
    for _ in range(runs):
        for samples, target in zip(chains, targets, strict=True):
            samples.append(sample(*(await target.chain()), chained=True))
    for _ in range(max(3, runs // 4)):
        for samples, target in zip(fan_outs, targets, strict=True):
            samples.append(sample(*(await target.fan_out()), chained=False))

    figures = []
    for target, chain, fan_out in zip(targets, chains, fan_outs, strict=True):
        started = time.perf_counter()
        results = await asyncio.gather(*(target.chain() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        tasks = sum(len(spans) for _, _, spans in results)
        figures.append(Figures(chain, fan_out, concurrency / elapsed, tasks / elapsed))
    return figures


def percentile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def ms(values: list[float]) -> str:
    return f"{percentile(values, 50) * 1000:8.1f} {percentile(values, 90) * 1000:8.1f}"


def report(dagbridge: Figures, baseline: Figures, runs: int, concurrency: int) -> str:
    def rows(label: str, pick: Callable[[Figures], list[float]]) -> str:
        return f"{label:<34}{ms(pick(dagbridge))}   {ms(pick(baseline))}"

    lines = [
        f"{'':<34}{'dagbridge':>17}   {'plain Temporal':>17}",
        f"{'(milliseconds)':<34}{'p50':>8} {'p90':>8}   {'p50':>8} {'p90':>8}",
        rows("3-task chain: run latency", lambda f: [s.run_seconds for s in f.chain]),
        rows("3-task chain: first-task latency", lambda f: [s.first_task_seconds for s in f.chain]),
        rows("3-task chain: inter-task latency", lambda f: [x for s in f.chain for x in s.inter_task_seconds]),
        rows("50-task fan-out: run latency", lambda f: [s.run_seconds for s in f.fan_out]),
        rows("50-task fan-out: first-task latency", lambda f: [s.first_task_seconds for s in f.fan_out]),
        f"{f'{concurrency} concurrent chains: DAG runs/s':<34}{dagbridge.runs_per_second:17.1f}   "
        f"{baseline.runs_per_second:17.1f}",
        f"{f'{concurrency} concurrent chains: tasks/s':<34}{dagbridge.tasks_per_second:17.1f}   "
        f"{baseline.tasks_per_second:17.1f}",
        f"({runs} sequential chain runs per side, {os.cpu_count()} CPUs)",
    ]
    return "\n".join(lines)


def start_dagbridge_worker(
    address: str, logs: Path, task_processes: int, extra_env: dict[str, str] | None = None
) -> subprocess.Popen:
    """A ``dagbridge worker`` for the benchmark DAGs, without a broker: engine figures, no events."""
    return subprocess.Popen(
        [sys.executable, "-m", "dagbridge.cli", "worker"],
        env={
            **os.environ,
            "AIRFLOW_HOME": str(logs / "airflow-home"),
            "DAGBRIDGE_TEMPORAL_ADDRESS": address,
            "DAGBRIDGE_TASK_QUEUE": DAG_QUEUE,
            "DAGBRIDGE_DAGS_FOLDER": str(ROOT / "benchmarks" / "dags"),
            "DAGBRIDGE_TASK_PROCESSES": str(task_processes),
            "DAGBRIDGE_KAFKA_BOOTSTRAP": "",
            **(extra_env or {}),
        },
        stdout=(logs / "dagbridge-worker.log").open("wb"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )


async def main(runs: int, concurrency: int, task_processes: int) -> None:
    logs = Path(tempfile.mkdtemp(prefix="dagbridge-bench-"))
    with TemporalDevServer(logs) as server:
        workers = [
            start_dagbridge_worker(server.address, logs, task_processes),
            subprocess.Popen(
                [sys.executable, "-m", "benchmarks.baseline", server.address, BASELINE_QUEUE],
                stdout=(logs / "baseline-worker.log").open("wb"),
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            ),
        ]
        try:
            client = await Client.connect(server.address, data_converter=pydantic_data_converter)
            dagbridge, baseline = await measure([DagbridgeTarget(client), BaselineTarget(client)], runs, concurrency)
            print(report(dagbridge, baseline, runs, concurrency))
            print(f"(server and worker logs in {logs})")
        finally:
            for worker in workers:
                worker.terminate()
                worker.wait(timeout=30)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="sequential runs of the chain per side")
    parser.add_argument("--concurrency", type=int, default=20, help="runs in flight for the throughput figure")
    parser.add_argument("--task-processes", type=int, default=4, help="task processes of the dagbridge worker")
    parser.add_argument(
        "--mode",
        choices=["engine", "kafka", "routes", "scale", "schedule", "deferrable", "soak"],
        default="engine",
        help="what to measure",
    )
    parser.add_argument("--triggers", type=int, default=500, help="kafka mode: runs started for the starts/s figure")
    parser.add_argument("--rounds", type=int, default=3, help="kafka mode: bridge rounds of the starts/s figure")
    parser.add_argument("--sizes", default="10,100,1000,2000", help="scale mode: DAG sizes (tasks)")
    parser.add_argument("--no-mapping", action="store_true", help="scale mode: skip the 10,000-item mapping")
    parser.add_argument("--dags", type=int, default=200, help="schedule mode: DAGs ticking together")
    parser.add_argument("--period", type=int, default=60, help="schedule mode: seconds between ticks")
    parser.add_argument("--ticks", type=int, default=3, help="schedule mode: ticks of every DAG")
    parser.add_argument("--waiting", type=int, default=1000, help="deferrable mode: deferred tasks waiting at once")
    parser.add_argument("--minutes", type=float, default=10.0, help="soak mode: how long triggers are produced")
    parser.add_argument("--rate", type=float, default=2.0, help="soak mode: triggers produced per second")
    args = parser.parse_args()
    if args.mode == "kafka":
        # Imported here: kafka_mode imports this module's helpers.
        from benchmarks import kafka_mode

        kafka_mode.main(kafka_mode.KafkaArgs(args.runs, args.triggers, args.rounds, args.task_processes))
    elif args.mode == "schedule":
        from benchmarks import schedule_mode

        schedule_mode.main(schedule_mode.ScheduleArgs(args.dags, args.period, args.ticks, args.task_processes))
    elif args.mode == "routes":
        from benchmarks import routes_mode

        routes_mode.main(args.triggers, args.rounds)
    elif args.mode == "deferrable":
        from benchmarks import deferrable_mode

        asyncio.run(deferrable_mode.main(args.waiting, args.task_processes))
    elif args.mode == "soak":
        from benchmarks import soak_mode

        soak_mode.main(soak_mode.SoakArgs(args.minutes, args.rate, args.task_processes))
    elif args.mode == "scale":
        from benchmarks import scale_mode

        scale_mode.main([int(size) for size in args.sizes.split(",")], not args.no_mapping, args.task_processes)
    else:
        asyncio.run(main(args.runs, args.concurrency, args.task_processes))
