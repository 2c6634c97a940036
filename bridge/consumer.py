"""The trigger bridge: Kafka records in, one idempotent workflow start per run they ask for.

One consumer group reads the trigger topic and every topic of the routes file (bridge/routes.py):
a trigger record asks for one run in dagbridge's own format, a routed record for one run per
route that takes it (bridge/routing.py). At-least-once consumption plus an idempotent start
gives exactly one run per (dag_id, run_id): an offset is committed only once every record before
it has either started its workflows (or found them started already), been written to the DLQ,
or been found to concern no route. Whatever the bridge had not committed when it died is
delivered again, and starting it again is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum
from typing import Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CorruptRecordException, KafkaError
from aiokafka.structs import ConsumerRecord
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from bridge import metrics
from bridge.dlq import send_dead_letter
from bridge.flow import FlowControl
from bridge.offsets import PartitionOffsets
from bridge.routes import NO_ROUTES, Routes
from bridge.routing import Router, parse_trigger_record
from bridge.sources import run_source_memo
from bridge.watchers import NO_WATCHERS, WatcherRouter, Watchers
from infra.backoff import DEFAULT_BACKOFF, Backoff
from infra.kafka import kafka_options
from infra.temporal import connect, queue_asset_events, register_search_attributes, run_options, start_dag_run
from schemas.ids import dag_run_workflow_id
from schemas.messages import InvalidTrigger
from schemas.runs import DagRunRequest
from schemas.settings import Settings

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# What a server that is down or restarting raises: aiokafka's errors and the Temporal
# client's connection errors are RuntimeErrors, a start that hangs ends in TimeoutError.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (RPCError, RuntimeError, OSError, TimeoutError)

POLL_TIMEOUT_MS = 200
FETCH_MAX_WAIT_MS = 20
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
# A partition holding a record the Kafka client cannot decode is fetched again this often.
UNDECODABLE_RETRY_SECONDS = 60.0
# What aiokafka raises for a record batch it cannot decode: its C record reader lets a header key
# that is not UTF-8 out as UnicodeDecodeError, its Python one wraps it in CorruptRecordException.
UNDECODABLE_RECORD_ERRORS = (CorruptRecordException, UnicodeDecodeError)
# With topic patterns, how soon a new topic that matches is noticed (aiokafka's default: 5 min).
PATTERN_METADATA_MAX_AGE_MS = 30_000


class Outcome(StrEnum):
    STARTED = "started"
    DUPLICATE = "duplicate"
    INVALID = "invalid"
    ERROR = "error"


class RouteOutcome(StrEnum):
    STARTED = "started"
    DUPLICATE = "duplicate"
    FILTERED = "filtered"
    DEAD_LETTERED = "dead_lettered"


class WatcherOutcome(StrEnum):
    EVENT = "event"
    FILTERED = "filtered"
    DEAD_LETTERED = "dead_lettered"


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
        routes: Routes = NO_ROUTES,
        watchers: Watchers = NO_WATCHERS,
        backoff: Backoff = DEFAULT_BACKOFF,
        drain_timeout_seconds: float = 30.0,
    ) -> None:
        self._settings = settings
        self._routes = routes
        self._watchers = watchers
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
        # Partitions holding a record aiokafka cannot decode, paused until the monotonic time given.
        self._undecodable: dict[TopicPartition, float] = {}
        self._wake = asyncio.Event()
        self._last_commit = time.monotonic()
        self.outcomes: Counter[Outcome] = Counter()
        # Routed records: (route name, outcome), and records of routed topics no route took.
        self.route_outcomes: Counter[tuple[str, RouteOutcome]] = Counter()
        self.unrouted = 0
        # AssetWatcher records: (watcher label, outcome), and (dag_id, run outcome) of the runs they started.
        self.watcher_outcomes: Counter[tuple[str, WatcherOutcome]] = Counter()
        self.watcher_runs: Counter[tuple[str, Outcome]] = Counter()
        self._lag = metrics.ConsumerLag()
        self._router = Router(routes, max_conf_bytes=settings.max_conf_bytes, options=self._options)
        self._watcher_router = WatcherRouter(
            watchers,
            batched_dags=routes.batched_watcher_dags,
            max_payload_bytes=settings.max_conf_bytes,
            options=self._options,
        )
        # apply_function is user code that may block; the provider calls it for one message at a time.
        self._apply_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="apply-function")
        self._flow = FlowControl(
            routes.max_in_flight_runs,
            {route.name: route.route.rate_limit for route in routes.routes if route.route.rate_limit is not None},
            backoff=backoff,
        )
        self._flow.on_change = self._wake.set
        metrics.declare_routes([route.name for route in routes.routes], list(routes.max_in_flight_runs))
        metrics.declare_watchers([watcher.spec.label for watcher in watchers.watchers])

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then finish in-flight records, commit and leave the group."""
        client = await self._until_available(stop, "connect to Temporal", lambda: connect(self._settings))
        if client is None:
            return
        await register_search_attributes(client)
        # Before consuming: a capped DAG's open runs must be counted before a record can start another.
        if not await self._until_available(stop, "list open runs of capped DAGs", lambda: self._flow.start(client)):
            return
        producer = await self._until_available(stop, "start the DLQ producer", self._start_producer)
        if producer is None:
            await self._flow.stop()
            return
        consumer = await self._until_available(stop, "join the consumer group", self._start_consumer)
        if consumer is None:
            await producer.stop()
            await self._flow.stop()
            return
        self._client, self._producer, self._consumer = client, producer, consumer
        self._subscribe(consumer)
        try:
            await self._consume(stop)
        finally:
            await self._drain(set(self._in_flight), self._drain_timeout)
            await self._commit()
            await consumer.stop()
            await producer.stop()
            await self._flow.stop()
            self._apply_executor.shutdown(wait=False, cancel_futures=True)
            log.info(
                "bridge stopped: %s",
                {
                    **{outcome.value: n for outcome, n in self.outcomes.items()},
                    **{f"{route}.{outcome.value}": n for (route, outcome), n in self.route_outcomes.items()},
                    **({"unrouted": self.unrouted} if self.unrouted else {}),
                    **{f"{label}.{outcome.value}": n for (label, outcome), n in self.watcher_outcomes.items()},
                },
            )

    def _subscribe(self, consumer: AIOKafkaConsumer) -> None:
        """One subscription for the trigger topic and every route's and watcher's topics: one group serves all."""
        topics = {self._settings.trigger_topic, *self._routes.topics, *self._watchers.topics}
        patterns = self._routes.patterns + self._watchers.patterns
        if not patterns:
            consumer.subscribe(sorted(topics), listener=_Rebalance(self))
            what = ", ".join(sorted(topics))
        else:
            consumer.subscribe(pattern=self.subscription_pattern(), listener=_Rebalance(self))
            what = f"topics matching {self.subscription_pattern()}"
        log.info(
            "bridge consuming %s as group %s (%s)", what, self._settings.consumer_group, self._settings.kafka_bootstrap
        )

    def subscription_pattern(self) -> str:
        """The trigger topic, the routes' topics and patterns, never a topic the bridge or workers write."""
        own = sorted({self._settings.dlq_topic, self._settings.task_events_topic, self._settings.run_events_topic})
        names = sorted({self._settings.trigger_topic, *self._routes.topics, *self._watchers.topics})
        patterns = self._routes.patterns + self._watchers.patterns
        alternatives = [re.escape(name) for name in names] + [f"(?:{pattern})" for pattern in patterns]
        excluded = "|".join(re.escape(name) for name in own)
        return f"^(?!(?:{excluded})$)(?:{'|'.join(alternatives)})$"

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
            **(
                {"metadata_max_age_ms": PATTERN_METADATA_MAX_AGE_MS}
                if self._routes.patterns or self._watchers.patterns
                else {}
            ),
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
            # Records waiting for a cap or a rate have their partitions paused; they do not hold
            # back the records of other partitions.
            waiting = sum(self._flow.waiting_partitions.values())
            metrics.FLOW_WAITING.set(waiting)
            free = self._settings.max_in_flight_starts - (len(self._in_flight) - waiting)
            if blocked or free <= 0:
                self._wake.clear()
                await _wait_any(self._wake, stop, timeout=1.0)
                if blocked and time.monotonic() - last_poll >= KEEPALIVE_POLL_SECONDS:
                    # Every assigned partition is paused: this returns nothing but keeps the membership.
                    self._dispatch(await self._consumer.getmany(timeout_ms=0))
                    last_poll = time.monotonic()
            else:
                try:
                    batches = await self._consumer.getmany(timeout_ms=POLL_TIMEOUT_MS, max_records=free)
                except UNDECODABLE_RECORD_ERRORS:
                    batches = await self._fetch_around_undecodable(free)
                self._dispatch(batches)
                last_poll = time.monotonic()
            if time.monotonic() - self._last_commit >= self._settings.commit_interval_seconds:
                await self._commit()
                await self._lag.update(self._consumer, Counter(self._in_flight.values()))

    async def _fetch_around_undecodable(
        self, max_records: int
    ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        """Fetch partition by partition after aiokafka could not decode a record batch, and pause the
        partitions it fails on: the others go on, and the bad one is retried now and then.

        aiokafka raises for the whole fetch without naming the partition, and a record that breaks the
        protocol (a header key that is not UTF-8) fails every fetch of it. Nothing of such a partition
        is committed past the record; an operator moves the group's offset past it.
        """
        await self._rewind_to_unseen()
        batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {}
        for tp in sorted(self._consumer.assignment() - self._consumer.paused()):
            if max_records <= 0:
                break
            try:
                # Not 0: the failed fetch was dropped, and only a fetch again shows which partition holds it.
                fetched = await self._consumer.getmany(tp, timeout_ms=POLL_TIMEOUT_MS, max_records=max_records)
            except UNDECODABLE_RECORD_ERRORS as err:
                self._undecodable[tp] = time.monotonic() + UNDECODABLE_RETRY_SECONDS
                position = await self._consumer.position(tp)
                log.error(
                    "%s[%d]: a record at or after offset %d cannot be decoded by the Kafka client (%s: %s); this "
                    "partition waits (fetched again every %.0f s) until the group's offset is moved past it",
                    tp.topic, tp.partition, position, type(err).__name__, err, UNDECODABLE_RETRY_SECONDS,
                )  # fmt: skip
                continue
            batches.update(fetched)
            max_records -= sum(len(records) for records in fetched.values())
        return batches

    async def _rewind_to_unseen(self) -> None:
        """Seek every assigned partition to the first record the bridge has not been handed.

        When one partition's batch fails to decode, aiokafka drops the records of the other partitions
        it had taken from the same fetch for this call, with their positions already moved past them.
        """
        for tp in self._consumer.assignment():
            tracked = self._partitions.get(tp)
            offset = tracked.next_offset if tracked is not None else None
            if offset is None:
                offset = await self._consumer.committed(tp)
            if offset is None:
                await self._consumer.seek_to_beginning(tp)  # auto_offset_reset="earliest"
            else:
                self._consumer.seek(tp, offset)

    def _pause(self, everything: bool) -> None:
        """Pause every partition while a server is away, else those with records waiting for room,
        and those holding a record that cannot be decoded until they are tried again."""
        assigned = self._consumer.assignment()
        now = time.monotonic()
        self._undecodable = {tp: until for tp, until in self._undecodable.items() if until > now and tp in assigned}
        wanted = set(assigned) if everything else set(self._flow.waiting_partitions) & assigned
        wanted |= self._undecodable.keys()
        paused = self._consumer.paused()
        if wanted - paused:
            self._consumer.pause(*(wanted - paused))
        if paused - wanted:
            self._consumer.resume(*(paused - wanted))
        metrics.PAUSED_PARTITIONS.set(len(wanted))

    def _dispatch(self, batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        for tp, records in batches.items():
            offsets = self._partitions.setdefault(tp, PartitionOffsets())
            for record in records:
                offsets.add(record.offset)
                task = asyncio.create_task(self._handle(record, offsets, tp))
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

    async def _handle(
        self, record: ConsumerRecord[bytes, bytes], offsets: PartitionOffsets, tp: TopicPartition
    ) -> None:
        if record.topic == self._settings.trigger_topic:
            await self._handle_trigger(record, tp)
        else:
            watched = bool(self._watcher_router.watchers_of(record.topic))
            if watched:
                await self._handle_watched(record, tp)
            if not watched or self._router.routes_of(record.topic):
                await self._handle_routed(record, tp)
        offsets.done(record.offset)

    async def _handle_trigger(self, record: ConsumerRecord[bytes, bytes], tp: TopicPartition) -> None:
        try:
            request = parse_trigger_record(record, max_conf_bytes=self._settings.max_conf_bytes, options=self._options)
        except InvalidTrigger as err:
            async with self._slots:
                await self._dead_letter(record, err.reason)
            outcome = Outcome.INVALID
        else:
            try:
                outcome = await self._start_admitted(record, tp, None, request)
            except StartRejected as err:
                async with self._slots:
                    await self._dead_letter(record, str(err))
                outcome = Outcome.ERROR
            log.info("trigger %s", outcome.value, extra={"dag_id": request.dag_id, "run_id": request.run_id})
        self.outcomes[outcome] += 1
        metrics.record_outcome(outcome.value, record.timestamp)

    async def _handle_routed(self, record: ConsumerRecord[bytes, bytes], tp: TopicPartition) -> None:
        verdicts = self._router.route(record)
        if all(verdict.request is None and verdict.error is None for verdict in verdicts):
            self.unrouted += 1
            metrics.UNROUTED_MESSAGES.inc()
        # One route after the other: the record is done (and may be committed) once each route's is.
        for verdict in verdicts:
            if verdict.error is not None:
                async with self._slots:
                    await self._dead_letter(record, verdict.error, route=verdict.route)
                outcome = RouteOutcome.DEAD_LETTERED
            elif verdict.request is None:
                outcome = RouteOutcome.FILTERED
            else:
                try:
                    started = await self._start_admitted(record, tp, verdict.route, verdict.request)
                except StartRejected as err:
                    async with self._slots:
                        await self._dead_letter(record, f"route {verdict.route}: {err}", route=verdict.route)
                    outcome = RouteOutcome.DEAD_LETTERED
                else:
                    outcome = RouteOutcome.STARTED if started is Outcome.STARTED else RouteOutcome.DUPLICATE
                    log.info(
                        "route %s: %s",
                        verdict.route,
                        outcome.value,
                        extra={"dag_id": verdict.request.dag_id, "run_id": verdict.request.run_id},
                    )
            self.route_outcomes[verdict.route, outcome] += 1
            metrics.record_route_outcome(verdict.route, outcome.value, record.timestamp)

    async def _handle_watched(self, record: ConsumerRecord[bytes, bytes], tp: TopicPartition) -> None:
        """What Airflow's triggerer and scheduler would make of an AssetWatcher message: runs, queued events."""
        loop = asyncio.get_running_loop()
        watched = await loop.run_in_executor(self._apply_executor, self._watcher_router.route, record)
        for label, reason in watched.errors:
            async with self._slots:
                await self._dead_letter(record, reason)
            self._count_watcher(label, WatcherOutcome.DEAD_LETTERED)
        for label in watched.filtered:
            self._count_watcher(label, WatcherOutcome.FILTERED)
        for label in watched.events:
            self._count_watcher(label, WatcherOutcome.EVENT)
        for dag_id, events in watched.queued.items():
            async with self._slots:
                await self._retrying(
                    f"queue {len(events)} asset events for {dag_id}",
                    functools.partial(
                        queue_asset_events, self._client, dag_id, events, self._settings.task_queue, self._options
                    ),
                )
            log.info("asset watcher event queued", extra={"dag_id": dag_id})
            metrics.WATCHER_RUNS.labels(dag_id, "queued").inc()
        for request in watched.runs:
            try:
                outcome = await self._start_admitted(record, tp, None, request)
            except StartRejected as err:
                async with self._slots:
                    await self._dead_letter(record, f"asset watcher run of {request.dag_id}: {err}")
                outcome = Outcome.ERROR
            log.info("asset watcher run %s", outcome.value, extra={"dag_id": request.dag_id, "run_id": request.run_id})
            self.watcher_runs[request.dag_id, outcome] += 1
            metrics.record_watcher_run(request.dag_id, outcome.value, record.timestamp)

    def _count_watcher(self, label: str, outcome: WatcherOutcome) -> None:
        self.watcher_outcomes[label, outcome] += 1
        metrics.WATCHER_MESSAGES.labels(label, outcome.value).inc()

    async def _start_admitted(
        self, record: ConsumerRecord[bytes, bytes], tp: TopicPartition, route: str | None, request: DagRunRequest
    ) -> Outcome:
        """Start the run once flow control lets it through; raises ``StartRejected``."""
        memo = run_source_memo(record.topic, record.partition, record.offset, route)
        async with self._flow.admitted(tp, route, request.dag_id) as admission, self._slots:
            outcome = await self._retrying(
                f"start {dag_run_workflow_id(request.dag_id, request.run_id)}", lambda: self._start(request, memo)
            )
            admission.opened(request.dag_id, request.run_id)
        return outcome

    async def _start(self, request: DagRunRequest, memo: dict[str, object] | None = None) -> Outcome:
        try:
            await asyncio.wait_for(
                start_dag_run(self._client, request, self._settings.task_queue, memo, trigger_source="kafka"),
                START_TIMEOUT_SECONDS,
            )
        except WorkflowAlreadyStartedError:
            return Outcome.DUPLICATE
        except RPCError as err:
            if err.status == RPCStatusCode.INVALID_ARGUMENT:
                raise StartRejected(f"Temporal rejected the start: {err.message}") from err
            raise
        return Outcome.STARTED

    async def _dead_letter(self, record: ConsumerRecord[bytes, bytes], reason: str, route: str | None = None) -> None:
        log.warning(
            "invalid record %s[%d]@%d to %s: %s",
            record.topic,
            record.partition,
            record.offset,
            self._settings.dlq_topic,
            reason,
        )
        await self._retrying(
            f"write {record.topic}[{record.partition}]@{record.offset} to the DLQ",
            lambda: send_dead_letter(self._producer, self._settings.dlq_topic, record, reason, route=route),
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
