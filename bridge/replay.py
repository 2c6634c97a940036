"""``dagbridge replay`` and ``dagbridge reconcile``: a range of a topic, read again outside the group.

Both read with a consumer of no group (assign and seek), so the bridge's committed offsets never
move, and map each record exactly as the bridge does (the trigger format on the trigger topic, the
routes file elsewhere): the same record gives the same run IDs, so what is already started is
recognised as such.

- replay starts what is missing; a start that finds its workflow is a duplicate, so a replay is
  always safe, however often it runs and over whatever range.
- reconcile starts nothing. It reports the range's records whose run does not exist, and the runs
  whose memo says they were started from a record in the range (same topic, partition and offset
  range) that the range no longer maps to them (the routes changed, the record was compacted).
  Its scope is that range and those runs: runs started by other means have no source memo.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from bridge.flow import FlowControl
from bridge.routes import Routes
from bridge.routing import Router, parse_trigger_record
from bridge.sources import run_source, run_source_memo
from bridge.watchers import NO_WATCHERS, WatcherRouter, Watchers
from infra.backoff import Backoff
from infra.kafka import kafka_options
from infra.temporal import run_options, start_dag_run
from schemas.ids import DAG_RUN_PREFIX, dag_run_workflow_id
from schemas.messages import InvalidTrigger
from schemas.runs import DagRunRequest
from schemas.settings import Settings

READ_TIMEOUT_MS = 500


class ReplayError(Exception):
    """The range cannot be read (no such topic or partition, a bad range); the message says why."""


@dataclass(frozen=True)
class TopicRange:
    """Records of ``topic`` from a start (inclusive) to an end (exclusive); the end defaults to the
    topic's end when the command starts."""

    topic: str
    from_offset: int | None = None
    from_timestamp: datetime | None = None
    to_offset: int | None = None
    to_timestamp: datetime | None = None
    partitions: tuple[int, ...] = ()


@dataclass(frozen=True)
class MappedRun:
    """A run one record asks for: its request, or why the record cannot start it."""

    record: ConsumerRecord[bytes, bytes]
    route: str | None
    request: DagRunRequest | None
    error: str | None

    @property
    def where(self) -> str:
        return f"{self.record.topic}[{self.record.partition}]@{self.record.offset}"


@dataclass
class Summary:
    records: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    read: dict[int, tuple[int, int]] = field(default_factory=dict)  # partition -> [start, end)

    def line(self, what: str) -> str:
        parts = ", ".join(f"{n} {name}" for name, n in sorted(self.counts.items()))
        ranges = ", ".join(f"[{p}] {start}..{end - 1}" for p, (start, end) in sorted(self.read.items()) if end > start)
        return f"{what}: {self.records} records ({ranges or 'none'}): {parts or 'nothing to do'}"


class RangeMapper:
    """Maps records as the bridge would: the trigger topic in dagbridge's format, other topics by route
    and by AssetWatcher. Watcher events a DAG queues in its ``assets:<dag_id>`` workflow are counted,
    not replayed: only runs keyed by the record are."""

    def __init__(self, settings: Settings, routes: Routes, watchers: Watchers = NO_WATCHERS) -> None:
        self._settings = settings
        self._options = run_options(settings)
        self._router = Router(routes, max_conf_bytes=settings.max_conf_bytes, options=self._options)
        self._watchers = WatcherRouter(
            watchers,
            batched_dags=routes.batched_watcher_dags,
            max_payload_bytes=settings.max_conf_bytes,
            options=self._options,
        )

    def reads(self, topic: str) -> bool:
        return (
            topic == self._settings.trigger_topic
            or bool(self._router.routes_of(topic))
            or bool(self._watchers.watchers_of(topic))
        )

    def watcher_dags(self, topic: str) -> set[str]:
        """The DAGs the topic's watchers start runs of, one per record."""
        return {target.dag_id for watcher in self._watchers.watchers_of(topic) for target in watcher.spec.targets}

    def runs(self, record: ConsumerRecord[bytes, bytes], summary: Summary) -> list[MappedRun]:
        if record.topic == self._settings.trigger_topic:
            try:
                request = parse_trigger_record(
                    record, max_conf_bytes=self._settings.max_conf_bytes, options=self._options
                )
            except InvalidTrigger as err:
                return [MappedRun(record, None, None, err.reason)]
            return [MappedRun(record, None, request, None)]
        mapped = []
        watched = bool(self._watchers.watchers_of(record.topic))
        if watched:
            # The same user code as in the bridge: apply_function runs again for every record read.
            verdict = self._watchers.route(record)
            # Counted only when there are some: the summary line names every count it holds.
            if verdict.filtered:
                summary.counts["filtered"] += len(verdict.filtered)
            if verdict.queued:
                summary.counts["queued, not replayed"] += sum(len(events) for events in verdict.queued.values())
            mapped += [MappedRun(record, None, None, reason) for _, reason in verdict.errors]
            mapped += [MappedRun(record, None, request, None) for request in verdict.runs]
        if watched and not self._router.routes_of(record.topic):
            return mapped
        routed = []
        for verdict in self._router.route(record):
            if verdict.request is None and verdict.error is None:
                summary.counts["filtered"] += 1
            else:
                routed.append(MappedRun(record, verdict.route, verdict.request, verdict.error))
        if not routed:
            summary.counts["unrouted"] += 1
        return mapped + routed


async def read_range(
    settings: Settings, span: TopicRange, summary: Summary
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """Every record of the range, partition by partition order within each; raises ``ReplayError``."""
    consumer = AIOKafkaConsumer(
        **kafka_options(settings), group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        await consumer.topics()
        known = consumer.partitions_for_topic(span.topic)
        if not known:
            raise ReplayError(f"topic {span.topic!r} does not exist")
        missing = set(span.partitions) - known
        if missing:
            raise ReplayError(f"topic {span.topic!r} has no partition {', '.join(map(str, sorted(missing)))}")
        partitions = [TopicPartition(span.topic, p) for p in sorted(span.partitions or known)]
        beginnings = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
        starts = await _offsets(
            consumer, partitions, span.from_offset, span.from_timestamp, default=beginnings, ends=ends
        )
        stops = await _offsets(consumer, partitions, span.to_offset, span.to_timestamp, default=ends, ends=ends)
        bounds = {tp: (max(starts[tp], beginnings[tp]), min(stops[tp], ends[tp])) for tp in partitions}
        summary.read = {tp.partition: (start, max(end, start)) for tp, (start, end) in bounds.items()}
        pending = {tp for tp, (start, end) in bounds.items() if start < end}
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, bounds[tp][0])
        consumer.pause(*(set(partitions) - pending))
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=READ_TIMEOUT_MS)
            for tp, records in batches.items():
                for record in records:
                    if record.offset < bounds[tp][1]:
                        yield record
                if await consumer.position(tp) >= bounds[tp][1]:
                    pending.discard(tp)
                    consumer.pause(tp)
            # A range may end at a gap (compaction, aborted transactions): the position says we are past it.
            for tp in list(pending):
                if await consumer.position(tp) >= bounds[tp][1]:
                    pending.discard(tp)
    finally:
        await consumer.stop()


async def _offsets(
    consumer: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    offset: int | None,
    timestamp: datetime | None,
    *,
    default: dict[TopicPartition, int],
    ends: dict[TopicPartition, int],
) -> dict[TopicPartition, int]:
    if offset is not None:
        return dict.fromkeys(partitions, offset)
    if timestamp is None:
        return dict(default)
    found = await consumer.offsets_for_times(dict.fromkeys(partitions, int(timestamp.timestamp() * 1000)))
    # No record at or after the time: the partition's end.
    return {tp: (found[tp].offset if found.get(tp) is not None else ends[tp]) for tp in partitions}


async def replay(
    settings: Settings,
    routes: Routes,
    client: Client,
    span: TopicRange,
    *,
    backoff: Backoff | None = None,
    watchers: Watchers = NO_WATCHERS,
) -> Summary:
    """Start every run the range asks for that does not exist yet; the DAGs' caps are respected."""
    mapper = RangeMapper(settings, routes, watchers)
    if not mapper.reads(span.topic):
        raise ReplayError(f"topic {span.topic!r} is neither the trigger topic nor read by any route or AssetWatcher")
    summary = Summary()
    flow = FlowControl(routes.max_in_flight_runs, {}, backoff=backoff or Backoff())
    await flow.start(client)
    slots = asyncio.Semaphore(settings.max_in_flight_starts)
    starts: set[asyncio.Task[None]] = set()

    async def start(run: MappedRun, request: DagRunRequest) -> None:
        tp = TopicPartition(run.record.topic, run.record.partition)
        memo = run_source_memo(run.record.topic, run.record.partition, run.record.offset, run.route)
        async with flow.admitted(tp, None, request.dag_id) as admission, slots:
            try:
                await start_dag_run(client, request, settings.task_queue, memo)
            except WorkflowAlreadyStartedError:
                summary.counts["duplicate"] += 1
            except RPCError as err:
                if err.status != RPCStatusCode.INVALID_ARGUMENT:
                    raise
                summary.counts["error"] += 1
                summary.problems.append(f"{run.where}: Temporal rejected the start: {err.message}")
                return
            else:
                summary.counts["started"] += 1
            admission.opened(request.dag_id, request.run_id)

    try:
        async for record in read_range(settings, span, summary):
            summary.records += 1
            for run in mapper.runs(record, summary):
                if run.request is None:
                    summary.counts["invalid"] += 1
                    summary.problems.append(f"{run.where}: {run.error}")
                    continue
                task = asyncio.create_task(start(run, run.request))
                starts.add(task)
                task.add_done_callback(starts.discard)
        if starts:
            await asyncio.gather(*starts)
    finally:
        for task in starts:
            task.cancel()
        await flow.stop()
    return summary


async def reconcile(
    settings: Settings, routes: Routes, client: Client, span: TopicRange, *, watchers: Watchers = NO_WATCHERS
) -> Summary:
    """Report the range's records with no run and the runs started from the range with no record."""
    mapper = RangeMapper(settings, routes, watchers)
    if not mapper.reads(span.topic):
        raise ReplayError(f"topic {span.topic!r} is neither the trigger topic nor read by any route or AssetWatcher")
    summary = Summary()
    expected: dict[str, MappedRun] = {}
    async for record in read_range(settings, span, summary):
        summary.records += 1
        for run in mapper.runs(record, summary):
            if run.request is None:
                summary.counts["invalid"] += 1
            else:
                expected[dag_run_workflow_id(run.request.dag_id, run.request.run_id)] = run
    slots = asyncio.Semaphore(settings.max_in_flight_starts)

    async def exists(workflow_id: str) -> bool:
        async with slots:
            try:
                await client.get_workflow_handle(workflow_id).describe()
            except RPCError as err:
                if err.status == RPCStatusCode.NOT_FOUND:
                    return False
                raise
            return True

    ids = sorted(expected)
    for workflow_id, found in zip(ids, await asyncio.gather(*(exists(i) for i in ids)), strict=True):
        if found:
            summary.counts["with run"] += 1
        else:
            summary.counts["message without run"] += 1
            summary.problems.append(f"message without run: {expected[workflow_id].where} -> {workflow_id}")
    dag_ids = {run.request.dag_id for run in expected.values() if run.request is not None}
    routed_dags = {route.route.dag_id for route in routes.routes if route.reads(span.topic)}
    for dag_id in sorted(dag_ids | routed_dags | mapper.watcher_dags(span.topic)):
        await _runs_without_message(client, dag_id, span.topic, set(expected), summary)
    return summary


async def _runs_without_message(client: Client, dag_id: str, topic: str, expected: set[str], summary: Summary) -> None:
    """Runs of ``dag_id`` whose source memo points into the range read, that no record of it maps to."""
    async for execution in client.list_workflows(f"WorkflowId STARTS_WITH '{DAG_RUN_PREFIX}{dag_id}:'"):
        if execution.id in expected:
            continue
        source = run_source(await execution.memo())
        if source is None or source.topic != topic or source.partition not in summary.read:
            continue
        start, end = summary.read[source.partition]
        if start <= source.offset < end:
            summary.counts["run without message"] += 1
            route = f" by route {source.route}" if source.route else ""
            summary.problems.append(
                f"run without message: {execution.id} (started from {source.topic}[{source.partition}]"
                f"@{source.offset}{route})"
            )
