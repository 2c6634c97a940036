"""Latency and throughput of dagbridge, next to plain Temporal measured in the same run.

Starts a Temporal dev server, a ``dagbridge worker`` and a baseline worker (the same DAG shapes
as plain activities, benchmarks/baseline.py) as separate processes, then prints:

- run latency: workflow start requested -> result received
- first-task latency: workflow start requested -> first task try started
- inter-task latency: a task try ended -> the next task of the chain started
- DAG runs/s and tasks/s with many runs in flight at once

    python benchmarks/benchmark.py [--runs 20] [--concurrency 20] [--worker-processes 1,2]

The dagbridge figures are measured once per worker-process count (``dagbridge worker`` with
``DAGBRIDGE_WORKER_PROCESSES``, default 1 and one per core), each next to plain Temporal's in
the same rounds, then the concurrent runs/s of each count side by side.

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

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.baseline import BaselineChain, BaselineFanOut  # noqa: E402
from dagbridge.local_stack import TemporalDevServer  # noqa: E402
from dagbridge.worker_processes import available_cores  # noqa: E402
from infra.temporal import start_dag_run  # noqa: E402
from schemas.names import CONCURRENCY_LIMIT_WORKFLOW  # noqa: E402
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
    # CPU of the concurrent chains per run: the target's worker processes (task processes
    # included), and the Temporal server's over the same interval.
    worker_cpu_ms_per_run: float = float("nan")
    server_cpu_ms_per_run: float = float("nan")


def _stat_fields(pid: int) -> list[str]:
    """``/proc/<pid>/stat`` after the command name (which may hold spaces): state is index 0."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def tree_cpu_seconds(root: int) -> float:
    """CPU time used by ``root`` and its descendants, those alive and those they reaped (Linux)."""
    parents: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = _stat_fields(int(entry.name))
            except (FileNotFoundError, ProcessLookupError):
                continue
            stats[int(entry.name)] = fields
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    ticks, pending = 0, [root]
    while pending:
        pid = pending.pop()
        if pid in stats:
            # utime, stime, cutime, cstime
            ticks += sum(int(value) for value in stats[pid][11:15])
        pending += parents.get(pid, [])
    return ticks / os.sysconf("SC_CLK_TCK")


def sample(submitted: datetime, finished: datetime, spans: list[Span], chained: bool) -> Sample:
    spans = sorted(spans)
    return Sample(
        run_seconds=(finished - submitted).total_seconds(),
        first_task_seconds=(spans[0][0] - submitted).total_seconds(),
        inter_task_seconds=[(b[0] - a[1]).total_seconds() for a, b in itertools.pairwise(spans)] if chained else [],
    )


class DagbridgeTarget:
    def __init__(self, client: Client, queue: str = DAG_QUEUE) -> None:
        self.client = client
        self.queue = queue

    async def run(self, dag_id: str) -> tuple[datetime, datetime, list[Span]]:
        submitted, finished, spans, _ = await self._run(dag_id)
        return submitted, finished, spans

    async def chain_workflow_id(self) -> str:
        return (await self._run("bench_chain"))[3]

    async def _run(self, dag_id: str) -> tuple[datetime, datetime, list[Span], str]:
        request = DagRunRequest(
            dag_id=dag_id,
            run_id=f"bench__{uuid.uuid4().hex}",
            logical_date=datetime.now(UTC),
            options=RunOptions(default_task_queue=self.queue),
        )
        submitted = datetime.now(UTC)
        handle = await start_dag_run(self.client, request, self.queue)
        result: DagRunResult = await handle.result()
        finished = datetime.now(UTC)
        assert result.state == "success", result
        return submitted, finished, [(ti.start_date, ti.end_date) for ti in result.task_instances], handle.id

    async def chain(self) -> tuple[datetime, datetime, list[Span]]:
        return await self.run("bench_chain")

    async def fan_out(self) -> tuple[datetime, datetime, list[Span]]:
        return await self.run("bench_fan_out")


class BaselineTarget:
    def __init__(self, client: Client) -> None:
        self.client = client

    async def _run(
        self, workflow_run, arg: int, workflow_id: str | None = None
    ) -> tuple[datetime, datetime, list[Span]]:
        submitted = datetime.now(UTC)
        spans = await self.client.execute_workflow(
            workflow_run, arg, id=workflow_id or f"baseline-{uuid.uuid4().hex}", task_queue=BASELINE_QUEUE
        )
        finished = datetime.now(UTC)
        return submitted, finished, [(started, ended) for _, started, ended in spans]

    async def chain_workflow_id(self) -> str:
        workflow_id = f"baseline-{uuid.uuid4().hex}"
        await self._run(BaselineChain.run, 3, workflow_id)
        return workflow_id

    async def chain(self) -> tuple[datetime, datetime, list[Span]]:
        return await self._run(BaselineChain.run, 3)

    async def fan_out(self) -> tuple[datetime, datetime, list[Span]]:
        return await self._run(BaselineFanOut.run, 50)


async def measure(
    targets: list[DagbridgeTarget | BaselineTarget],
    runs: int,
    concurrency: int,
    worker_pids: list[int] | None = None,
    server_pid: int | None = None,
) -> list[Figures]:
    """Sample the targets in turn, so a change in the machine's load affects them alike.

    With ``worker_pids`` (one per target) and ``server_pid``, the concurrent chains' figures
    carry the CPU each worker's process tree and the server spent per run.
    """
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
    for index, (target, chain, fan_out) in enumerate(zip(targets, chains, fan_outs, strict=True)):
        worker_pid = worker_pids[index] if worker_pids else None
        cpu_before = [tree_cpu_seconds(pid) if pid else 0.0 for pid in (worker_pid, server_pid)]
        started = time.perf_counter()
        results = await asyncio.gather(*(target.chain() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu = [
            (tree_cpu_seconds(pid) - before) * 1000 / concurrency if pid else float("nan")
            for pid, before in zip((worker_pid, server_pid), cpu_before, strict=True)
        ]
        tasks = sum(len(spans) for _, _, spans in results)
        figures.append(Figures(chain, fan_out, concurrency / elapsed, tasks / elapsed, *cpu))
    return figures


@dataclass
class HistoryFootprint:
    """What one 3-task chain costs the server, read from histories: the basis of shard sizing."""

    run_events: int
    workflow_tasks: int
    limit_events: int


async def history_footprint(client: Client, target: DagbridgeTarget | BaselineTarget) -> HistoryFootprint:
    """Run one chain alone and count its history events and the events it added to limit workflows."""
    query = f"WorkflowType = '{CONCURRENCY_LIMIT_WORKFLOW}' AND ExecutionStatus = 'Running'"
    limit_ids = [execution.id async for execution in client.list_workflows(query)]

    async def limit_events() -> int:
        descriptions = [await client.get_workflow_handle(workflow_id).describe() for workflow_id in limit_ids]
        return sum(d.raw_description.workflow_execution_info.history_length for d in descriptions)

    before = await limit_events()
    workflow_id = await target.chain_workflow_id()
    after = await limit_events()
    events = [event async for event in client.get_workflow_handle(workflow_id).fetch_history_events()]
    return HistoryFootprint(
        run_events=len(events),
        workflow_tasks=sum(1 for event in events if event.HasField("workflow_task_completed_event_attributes")),
        limit_events=after - before,
    )


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
        f"{'  CPU per run: worker, ms':<34}{dagbridge.worker_cpu_ms_per_run:17.1f}   "
        f"{baseline.worker_cpu_ms_per_run:17.1f}",
        f"{'  CPU per run: Temporal server, ms':<34}{dagbridge.server_cpu_ms_per_run:17.1f}   "
        f"{baseline.server_cpu_ms_per_run:17.1f}",
        f"({runs} sequential chain runs per side, {os.cpu_count()} CPUs)",
    ]
    return "\n".join(lines)


def start_dagbridge_worker(
    address: str,
    logs: Path,
    task_processes: int,
    extra_env: dict[str, str] | None = None,
    *,
    worker_processes: int = 1,
    queue: str = DAG_QUEUE,
) -> subprocess.Popen:
    """A ``dagbridge worker`` for the benchmark DAGs, without a broker: engine figures, no events.

    One worker process unless asked: the figures of the other modes stay comparable with earlier runs.
    """
    return subprocess.Popen(
        [sys.executable, "-m", "dagbridge.cli", "worker"],
        env={
            **os.environ,
            "AIRFLOW_HOME": str(logs / "airflow-home"),
            "DAGBRIDGE_TEMPORAL_ADDRESS": address,
            "DAGBRIDGE_TASK_QUEUE": queue,
            "DAGBRIDGE_DAGS_FOLDER": str(ROOT / "benchmarks" / "dags"),
            "DAGBRIDGE_TASK_PROCESSES": str(task_processes),
            "DAGBRIDGE_WORKER_PROCESSES": str(worker_processes),
            "DAGBRIDGE_KAFKA_BOOTSTRAP": "",
            **(extra_env or {}),
        },
        stdout=(logs / f"dagbridge-worker-{worker_processes}.log").open("ab"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )


async def wait_for_pollers(client: Client, queue: str, count: int, timeout: float = 300) -> None:
    """Wait until ``count`` distinct workers poll ``queue``'s workflow tasks, so no figure pays for a start."""
    deadline = time.monotonic() + timeout
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    while True:
        response = await client.workflow_service.describe_task_queue(request)
        # The server remembers pollers for a while after they left: count live processes only.
        if len({poller.identity for poller in response.pollers if _alive(poller.identity)}) >= count:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{count} workers did not poll {queue} within {timeout:.0f} s")
        await asyncio.sleep(0.5)


def _alive(identity: str) -> bool:
    """Whether the process behind a worker identity (the SDK's ``pid@host``) of this machine still runs."""
    pid, _, _ = identity.partition("@")
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    return True


def processes_report(rows: list[tuple[int, Figures, Figures]], concurrency: int) -> str:
    lines = [f"{concurrency} concurrent chains by worker processes (plain Temporal: one process, same rounds)"]
    for count, dagbridge, baseline in rows:
        lines.append(
            f"  {count} worker process{'es' if count > 1 else '':<2} {dagbridge.runs_per_second:6.1f} runs/s "
            f"{dagbridge.tasks_per_second:7.1f} tasks/s {dagbridge.worker_cpu_ms_per_run:6.0f} ms CPU/run   "
            f"plain Temporal {baseline.runs_per_second:6.1f} runs/s"
        )
    return "\n".join(lines)


async def main(runs: int, concurrency: int, task_processes: int, worker_processes: list[int], rounds: int = 3) -> None:
    logs = Path(tempfile.mkdtemp(prefix="dagbridge-bench-"))
    with TemporalDevServer(logs) as server:
        baseline_worker = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.baseline", server.address, BASELINE_QUEUE],
            stdout=(logs / "baseline-worker.log").open("wb"),
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        rows = []
        try:
            client = await Client.connect(server.address, data_converter=pydantic_data_converter)
            for count in worker_processes:
                # The same machine total of task processes, shared out among the worker processes.
                worker = start_dagbridge_worker(server.address, logs, task_processes, worker_processes=count)
                try:
                    await wait_for_pollers(client, DAG_QUEUE, count)
                    dagbridge, baseline = await measure(
                        [DagbridgeTarget(client), BaselineTarget(client)],
                        runs,
                        concurrency,
                        worker_pids=[worker.pid, baseline_worker.pid],
                        server_pid=server.pid,
                    )
                    targets = (DagbridgeTarget(client), BaselineTarget(client))
                    footprints = [await history_footprint(client, target) for target in targets]
                finally:
                    worker.terminate()
                    worker.wait(timeout=60)
                print(f"--- dagbridge worker with {count} worker process{'es' if count > 1 else ''}")
                print(report(dagbridge, baseline, runs, concurrency))
                ours, plain = footprints
                print(
                    f"one 3-task chain alone: {ours.run_events} history events, {ours.workflow_tasks} workflow tasks, "
                    f"{ours.limit_events} events on limit workflows (plain Temporal: {plain.run_events} events, "
                    f"{plain.workflow_tasks} workflow tasks)"
                )
                rows.append((count, dagbridge, baseline))
            print(processes_report(rows, concurrency))
            if len(worker_processes) > 1:
                print(
                    await compare_processes(
                        client,
                        server,
                        logs,
                        task_processes=task_processes,
                        counts=worker_processes,
                        concurrency=concurrency,
                        rounds=rounds,
                        baseline_pid=baseline_worker.pid,
                    )
                )
            load = ", ".join(f"{figure:.2f}" for figure in os.getloadavg())
            print(f"(load average at the end {load}; server and worker logs in {logs})")
        finally:
            baseline_worker.terminate()
            baseline_worker.wait(timeout=30)


async def compare_processes(
    client: Client,
    server: TemporalDevServer,
    logs: Path,
    *,
    task_processes: int,
    counts: list[int],
    concurrency: int,
    rounds: int,
    baseline_pid: int,
) -> str:
    """Concurrent chains on a worker of each process count, all up at once, in alternating rounds.

    On a shared machine the load moves between measurements taken one after the other; rounds
    that alternate between the workers (and plain Temporal) see the same load on average.
    """
    workers = {
        count: start_dagbridge_worker(
            server.address, logs, task_processes, worker_processes=count, queue=f"{DAG_QUEUE}-{count}"
        )
        for count in counts
    }
    try:
        for count in counts:
            await wait_for_pollers(client, f"{DAG_QUEUE}-{count}", count)
        entries: list[tuple[str, DagbridgeTarget | BaselineTarget, int]] = [
            (
                f"{count} worker process{'es' if count > 1 else ''}",
                DagbridgeTarget(client, f"{DAG_QUEUE}-{count}"),
                worker.pid,
            )
            for count, worker in workers.items()
        ]
        entries.append(("plain Temporal, 1 process", BaselineTarget(client), baseline_pid))
        for _, target, _ in entries:
            # Warm-up of every process: caches, task processes, sticky queues.
            await asyncio.gather(*(target.chain() for _ in range(concurrency)))
        rates: dict[str, list[float]] = {label: [] for label, _, _ in entries}
        cpu: dict[str, list[float]] = {label: [] for label, _, _ in entries}
        for _ in range(rounds):
            for label, target, pid in entries:
                cpu_before = tree_cpu_seconds(pid)
                started = time.perf_counter()
                await asyncio.gather(*(target.chain() for _ in range(concurrency)))
                rates[label].append(concurrency / (time.perf_counter() - started))
                cpu[label].append((tree_cpu_seconds(pid) - cpu_before) * 1000 / concurrency)
    finally:
        for worker in workers.values():
            worker.terminate()
            worker.wait(timeout=60)
    lines = [f"{concurrency} concurrent chains, {rounds} alternating rounds: median runs/s (by round), CPU ms/run"]
    for label, values in rates.items():
        by_round = " ".join(f"{rate:.1f}" for rate in values)
        lines.append(
            f"  {label:<26}{statistics.median(values):6.1f} runs/s ({by_round})  "
            f"{statistics.median(cpu[label]):5.0f} ms CPU/run"
        )
    return "\n".join(lines)


def _counts(text: str) -> list[int]:
    counts = [int(part) for part in text.split(",")]
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of process counts, each at least 1")
    return counts


def _widths(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("a comma-separated list of numbers") from None


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="sequential runs of the chain per side")
    parser.add_argument("--concurrency", type=int, default=20, help="runs in flight for the throughput figure")
    parser.add_argument("--task-processes", type=int, default=4, help="task processes of the dagbridge worker")
    cores = available_cores()
    parser.add_argument(
        "--worker-processes",
        type=_counts,
        default=[1] if cores == 1 else [1, cores],
        help=f"engine mode: the worker process counts to measure in turn (default: 1 and this machine's {cores} cores)",
    )
    parser.add_argument(
        "--mode",
        choices=["engine", "kafka", "routes", "scale", "schedule", "deferrable", "soak"],
        default="engine",
        help="what to measure",
    )
    parser.add_argument("--triggers", type=int, default=500, help="kafka mode: runs started for the starts/s figure")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="kafka mode: bridge rounds of the starts/s figure; engine mode: alternating rounds of the "
        "worker-process comparison",
    )
    parser.add_argument(
        "--sizes", type=_widths, default="10,100,1000,2000", help="scale mode: DAG sizes (tasks), empty for none"
    )
    parser.add_argument(
        "--mappings",
        type=_widths,
        default="10000",
        help="scale mode: widths of the mapped task (2000, 10000), empty for none",
    )
    parser.add_argument("--no-mapping", action="store_true", help="scale mode: skip the mappings (--mappings '')")
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

        scale_mode.main(args.sizes, [] if args.no_mapping else args.mappings, args.task_processes)
    else:
        asyncio.run(main(args.runs, args.concurrency, args.task_processes, args.worker_processes, args.rounds))
