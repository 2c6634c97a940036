"""The trigger bridge: Kafka trigger records in, one idempotent workflow start each.

At-least-once consumption plus an idempotent start gives exactly one run per trigger:
an offset is committed only once every record before it has either started its
workflow (or found it started already) or been written to the DLQ. Whatever the bridge
had not committed when it died is delivered again, and starting it again is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from bridge import metrics
from bridge.dlq import send_dead_letter
from bridge.offsets import PartitionOffsets
from infra.backoff import DEFAULT_BACKOFF, Backoff
from infra.kafka import kafka_options
from infra.temporal import connect, register_search_attributes, run_options, start_dag_run
from schemas.ids import dag_run_workflow_id
from schemas.messages import InvalidTrigger, parse_trigger
from schemas.runs import DagRunRequest
from schemas.settings import Settings

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# What a server that is down or restarting raises: aiokafka's errors and the Temporal
# client's connection errors are RuntimeErrors, a start that hangs ends in TimeoutError.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (RPCError, RuntimeError, OSError, TimeoutError)

POLL_TIMEOUT_MS = 200
FETCH_MAX_WAIT_MS = 20
COMMIT_INTERVAL_SECONDS = 0.5
# A start normally takes milliseconds; one that takes this long counts as Temporal being down,
# which pauses fetching instead of letting every slot hang.
START_TIMEOUT_SECONDS = 30.0
# aiokafka drops a member that does not poll for max_poll_interval_ms (5 min); while paused,
# the bridge polls (and gets nothing) at least this often.
KEEPALIVE_POLL_SECONDS = 10.0
REVOKE_DRAIN_SECONDS = 10.0
# A DLQ record is the original record plus a few small headers; the producer's default
# 1 MiB request limit would refuse an original that was close to the broker's limit.
DLQ_MAX_REQUEST_BYTES = 2 * 1024 * 1024


class Outcome(StrEnum):
    STARTED = "started"
    DUPLICATE = "duplicate"
    INVALID = "invalid"
    ERROR = "error"


class StartRejected(Exception):
    """Temporal refused the start itself (not the server's state): retrying cannot help."""


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, bridge: TriggerBridge) -> None:
        self._bridge = bridge

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._bridge._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._bridge._on_assigned(assigned)


class _KafkaClient(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


_Client = TypeVar("_Client", bound=_KafkaClient)


class TriggerBridge:
    _client: Client
    _producer: AIOKafkaProducer
    _consumer: AIOKafkaConsumer

    def __init__(
        self,
        settings: Settings,
        *,
        backoff: Backoff = DEFAULT_BACKOFF,
        drain_timeout_seconds: float = 30.0,
    ) -> None:
        self._settings = settings
        # Built now, so a bridge without a broker address fails at once, not after connecting to Temporal.
        self._kafka_options = kafka_options(settings)
        self._options = run_options(settings)
        self._backoff = backoff
        self._drain_timeout = drain_timeout_seconds
        self._slots = asyncio.Semaphore(settings.max_in_flight_starts)
        self._partitions: dict[TopicPartition, PartitionOffsets] = {}
        self._in_flight: dict[asyncio.Task[None], TopicPartition] = {}
        self._failure: BaseException | None = None
        self._backing_off = 0
        self._wake = asyncio.Event()
        self._last_commit = 0.0
        self.outcomes: Counter[Outcome] = Counter()
        self._lag = metrics.ConsumerLag()

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then finish in-flight records, commit and leave the group."""
        client = await self._until_available(stop, "connect to Temporal", lambda: connect(self._settings))
        if client is None:
            return
        await register_search_attributes(client)
        producer = await self._until_available(stop, "start the DLQ producer", self._start_producer)
        if producer is None:
            return
        consumer = await self._until_available(stop, "join the consumer group", self._start_consumer)
        if consumer is None:
            await producer.stop()
            return
        self._client, self._producer, self._consumer = client, producer, consumer
        consumer.subscribe([self._settings.trigger_topic], listener=_Rebalance(self))
        log.info(
            "bridge consuming %s as group %s (%s)",
            self._settings.trigger_topic,
            self._settings.consumer_group,
            self._settings.kafka_bootstrap,
        )
        try:
            await self._consume(stop)
        finally:
            await self._drain(set(self._in_flight), self._drain_timeout)
            await self._commit()
            await consumer.stop()
            await producer.stop()
            log.info("bridge stopped: %s", {outcome.value: n for outcome, n in self.outcomes.items()})

    async def _start_producer(self) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(**self._kafka_options, acks="all", max_request_size=DLQ_MAX_REQUEST_BYTES)
        return await self._started(producer)

    async def _start_consumer(self) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(
            **self._kafka_options,
            group_id=self._settings.consumer_group,
            enable_auto_commit=False,
            # A new group reads the topic from its start: a trigger already handled
            # becomes a duplicate, one never seen is not skipped.
            auto_offset_reset="earliest",
            # A trigger should start its run at once: the default 500 ms fetch wait lets a
            # broker hold a fetch that long on a quiet topic before answering with new records.
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        )
        return await self._started(consumer)

    @staticmethod
    async def _started(client: _Client) -> _Client:
        try:
            await client.start()
        except BaseException:
            # A client that failed to start still holds connections and tasks.
            await client.stop()
            raise
        return client

    async def _until_available(self, stop: asyncio.Event, what: str, attempt: Callable[[], Awaitable[_T]]) -> _T | None:
        """Retry ``attempt`` while its server is down; None if ``stop`` was set meanwhile."""
        delays = self._backoff.delays()
        while not stop.is_set():
            try:
                return await attempt()
            except TRANSIENT_ERRORS as err:
                delay = next(delays)
                log.warning("cannot %s (%s), retrying in %.1f s", what, err, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
        return None

    async def _consume(self, stop: asyncio.Event) -> None:
        last_poll = time.monotonic()
        while not stop.is_set():
            if self._failure is not None:
                raise self._failure
            blocked = self._backing_off > 0
            self._pause(blocked)
            free = self._settings.max_in_flight_starts - len(self._in_flight)
            if blocked or free <= 0:
                self._wake.clear()
                await _wait_any(self._wake, stop, timeout=1.0)
                if blocked and time.monotonic() - last_poll >= KEEPALIVE_POLL_SECONDS:
                    # Every assigned partition is paused: this returns nothing but keeps the membership.
                    self._dispatch(await self._consumer.getmany(timeout_ms=0))
                    last_poll = time.monotonic()
            else:
                self._dispatch(await self._consumer.getmany(timeout_ms=POLL_TIMEOUT_MS, max_records=free))
                last_poll = time.monotonic()
            if time.monotonic() - self._last_commit >= COMMIT_INTERVAL_SECONDS:
                await self._commit()
                await self._lag.update(self._consumer, Counter(self._in_flight.values()))

    def _pause(self, paused: bool) -> None:
        if paused:
            self._consumer.pause(*self._consumer.assignment())
        elif self._consumer.paused():
            self._consumer.resume(*self._consumer.paused())

    def _dispatch(self, batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        for tp, records in batches.items():
            offsets = self._partitions.setdefault(tp, PartitionOffsets())
            for record in records:
                offsets.add(record.offset)
                task = asyncio.create_task(self._handle(record, offsets))
                self._in_flight[task] = tp
                metrics.IN_FLIGHT.inc()
                task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        del self._in_flight[task]
        metrics.IN_FLIGHT.dec()
        if not task.cancelled() and task.exception() is not None and self._failure is None:
            # Not a server being down (that is retried): a bug. Stop rather than skip the record.
            self._failure = task.exception()
        self._wake.set()

    async def _handle(self, record: ConsumerRecord[bytes, bytes], offsets: PartitionOffsets) -> None:
        async with self._slots:
            try:
                request = parse_trigger(
                    record.value,
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    timestamp_ms=record.timestamp,
                    max_conf_bytes=self._settings.max_conf_bytes,
                    options=self._options,
                )
            except InvalidTrigger as err:
                await self._dead_letter(record, err.reason)
                outcome = Outcome.INVALID
            else:
                try:
                    outcome = await self._retrying(
                        f"start {dag_run_workflow_id(request.dag_id, request.run_id)}", lambda: self._start(request)
                    )
                except StartRejected as err:
                    await self._dead_letter(record, str(err))
                    outcome = Outcome.ERROR
                log.info("trigger %s", outcome.value, extra={"dag_id": request.dag_id, "run_id": request.run_id})
        self.outcomes[outcome] += 1
        metrics.record_outcome(outcome.value, record.timestamp)
        offsets.done(record.offset)

    async def _start(self, request: DagRunRequest) -> Outcome:
        try:
            await asyncio.wait_for(
                start_dag_run(self._client, request, self._settings.task_queue, trigger_source="kafka"),
                START_TIMEOUT_SECONDS,
            )
        except WorkflowAlreadyStartedError:
            return Outcome.DUPLICATE
        except RPCError as err:
            if err.status == RPCStatusCode.INVALID_ARGUMENT:
                raise StartRejected(f"Temporal rejected the start: {err.message}") from err
            raise
        return Outcome.STARTED

    async def _dead_letter(self, record: ConsumerRecord[bytes, bytes], reason: str) -> None:
        log.warning(
            "invalid trigger %s[%d]@%d to %s: %s",
            record.topic,
            record.partition,
            record.offset,
            self._settings.dlq_topic,
            reason,
        )
        await self._retrying(
            f"write {record.topic}[{record.partition}]@{record.offset} to the DLQ",
            lambda: send_dead_letter(self._producer, self._settings.dlq_topic, record, reason),
        )
        metrics.DLQ_MESSAGES.inc()

    async def _retrying(self, what: str, attempt: Callable[[], Awaitable[_T]]) -> _T:
        """Retry ``attempt`` while its server is down, and keep fetching paused meanwhile."""
        delays = self._backoff.delays()
        backing_off = False
        try:
            while True:
                try:
                    return await attempt()
                except TRANSIENT_ERRORS as err:
                    if not backing_off:
                        backing_off = True
                        self._backing_off += 1
                        self._wake.set()
                    delay = next(delays)
                    log.warning("cannot %s (%s: %s), retrying in %.1f s", what, type(err).__name__, err, delay)
                    await asyncio.sleep(delay)
        finally:
            if backing_off:
                self._backing_off -= 1
                self._wake.set()

    async def _commit(self, partitions: set[TopicPartition] | None = None) -> None:
        self._last_commit = time.monotonic()
        offsets = {
            tp: offset
            for tp, tracker in self._partitions.items()
            if (partitions is None or tp in partitions) and (offset := tracker.to_commit()) is not None
        }
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except KafkaError as err:
            # The records stay uncommitted and are retried at the next commit; if the bridge
            # dies first they are delivered again and found to be duplicates.
            log.warning("commit of %s failed: %s", offsets, err)
            return
        for tp, offset in offsets.items():
            self._partitions[tp].committed(offset)

    async def _drain(self, tasks: set[asyncio.Task[None]], timeout: float) -> None:
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        if pending:
            log.warning("%d triggers still in flight after %.0f s, left uncommitted", len(pending), timeout)
            for task in pending:
                task.cancel()
            await asyncio.wait(pending)

    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        # Give in-flight records of these partitions a chance to finish, so the next owner
        # does not have to find their starts to be duplicates.
        tasks = {task for task, tp in self._in_flight.items() if tp in revoked}
        if tasks:
            await asyncio.wait(tasks, timeout=REVOKE_DRAIN_SECONDS)
        await self._commit(revoked)
        for tp in revoked:
            self._partitions.pop(tp, None)

    def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        for tp in assigned:
            self._partitions[tp] = PartitionOffsets()
        if assigned:
            log.info("assigned %s", sorted(f"{tp.topic}[{tp.partition}]" for tp in assigned))


async def _wait_any(*events: asyncio.Event, timeout: float) -> None:
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
