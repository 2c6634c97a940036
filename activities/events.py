"""Task, run and asset events to Kafka: at least once, keyed by run, deduplicated downstream by event_id.

Tansu, the broker of local runs and tests, refuses the idempotent producer (InitProducerId
fails), so the producer does without: a publish retried after a lost acknowledgement can
write an event twice, and the stable event_id is what lets consumers drop the repeat.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from types import TracebackType

from aiokafka import AIOKafkaProducer
from temporalio import activity

from activities import metrics
from infra.kafka import kafka_configured, kafka_options
from schemas.ids import event_key
from schemas.messages import AssetEventMessage, RunEvent, TaskEvent
from schemas.names import PUBLISH_RUN_EVENT_ACTIVITY, PUBLISH_TASK_EVENT_ACTIVITY
from schemas.settings import Settings

log = logging.getLogger(__name__)

# The events a try holds its end for: its task event, and the asset events its task emitted.
TASK_EVENT = "task"
ASSET_EVENTS = "asset"
HELD_EVENT_KINDS = (TASK_EVENT, ASSET_EVENTS)

# Short enough that a broker that went away is noticed and retried well within a heartbeat timeout.
REQUEST_TIMEOUT_MS = 15_000
# A held event is worth a warning when it is first held, then once a minute: not one per retry.
HELD_EVENT_WARNING_INTERVAL_SECONDS = 60.0
# How long a stopping worker waits for Kafka to take what its producer still holds. Nothing is lost
# when it gives up: a try whose event was not acknowledged did not complete, so Temporal hands it
# to another worker, which publishes the event again.
PRODUCER_CLOSE_TIMEOUT_SECONDS = 5.0


class EventPublisher:
    """The worker's producer, started on first use so a worker starts while Kafka is down."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        # Series at 0 from the start: a failure rate reads 0, not "no data", until one fails.
        for topic in (settings.task_events_topic, settings.run_events_topic):
            metrics.EVENTS_PUBLISHED.labels(topic)
            metrics.EVENTS_FAILED.labels(topic)
        for kind in HELD_EVENT_KINDS:
            metrics.EVENTS_HELD_BACK.labels(kind)

    @property
    def enabled(self) -> bool:
        return kafka_configured(self._settings)

    async def publish_task_event(self, event: TaskEvent) -> None:
        await self._send(
            self._settings.task_events_topic, event_key(event.dag_id, event.run_id), event.model_dump_json()
        )

    async def publish_run_event(self, event: RunEvent) -> None:
        await self._send(
            self._settings.run_events_topic, event_key(event.dag_id, event.run_id), event.model_dump_json()
        )

    async def publish_asset_event(self, event: AssetEventMessage) -> None:
        # Keyed by asset: one asset's events stay in order, whichever runs produced them.
        await self._send(self._settings.asset_events_topic, event.asset_uri.encode(), event.model_dump_json())

    async def _send(self, topic: str, key: bytes, value: str) -> None:
        """Return once every in-sync replica has the event (acks=all); raise a KafkaError otherwise."""
        try:
            producer = await self._started()
            await producer.send_and_wait(topic, value=value.encode(), key=key)
        except Exception:
            metrics.EVENTS_FAILED.labels(topic).inc()
            raise
        metrics.EVENTS_PUBLISHED.labels(topic).inc()

    async def _started(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    **kafka_options(self._settings), acks="all", request_timeout_ms=REQUEST_TIMEOUT_MS
                )
                try:
                    await producer.start()
                except BaseException:
                    # A producer that failed to start still holds connections and tasks.
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def close(self) -> None:
        """Stop the producer, waiting at most ``PRODUCER_CLOSE_TIMEOUT_SECONDS`` for Kafka to take what it holds."""
        async with self._lock:
            if self._producer is not None:
                producer, self._producer = self._producer, None
                try:
                    async with asyncio.timeout(PRODUCER_CLOSE_TIMEOUT_SECONDS):
                        await producer.stop()
                except TimeoutError:
                    log.warning(
                        "Kafka at %s did not take the pending events within %.0f s; their tries go back to "
                        "Temporal unfinished and are published again",
                        self._settings.kafka_bootstrap,
                        PRODUCER_CLOSE_TIMEOUT_SECONDS,
                    )


class HeldEvent:
    """An event that Kafka (or Temporal, for asset events) has not taken yet, while its try waits for it.

    Use it around the retries of one event's publish, inside the activity that publishes it (its
    log lines then carry the run's and the try's IDs). While held, the event counts in
    ``dagbridge_events_held_back``; its first failure logs a warning, later ones at most one per
    ``HELD_EVENT_WARNING_INTERVAL_SECONDS``, and its publication after a hold one line more.
    """

    def __init__(self, what: str, kind: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._what = what
        self._kind = kind
        self._clock = clock
        self._held_since: float | None = None
        self._warned_at = 0.0
        self._failures = 0

    def __enter__(self) -> HeldEvent:
        return self

    def failed(self, error: BaseException, retry_in: float) -> None:
        """One more attempt failed with ``error``; the next is in ``retry_in`` seconds."""
        now = self._clock()
        self._failures += 1
        if self._held_since is None:
            self._held_since = self._warned_at = now
            metrics.EVENTS_HELD_BACK.labels(self._kind).inc()
            activity.logger.warning(
                "%s held back: cannot publish it (%s); the try stays open until it is out, retrying (next in %.1f s)",
                self._what,
                " ".join(str(error).split()),
                retry_in,
            )
        elif now - self._warned_at >= HELD_EVENT_WARNING_INTERVAL_SECONDS:
            self._warned_at = now
            activity.logger.warning(
                "%s still held back after %.0f s and %d attempts: %s",
                self._what,
                now - self._held_since,
                self._failures,
                " ".join(str(error).split()),
            )

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._held_since is None:
            return
        metrics.EVENTS_HELD_BACK.labels(self._kind).dec()
        if kind is None:
            activity.logger.info("%s published after %.0f s held back", self._what, self._clock() - self._held_since)


class EventActivities:
    """Publishing on the workflow's behalf: a workflow cannot do I/O itself.

    Each call makes one attempt; the workflow's retry policy repeats it until Kafka takes the event.
    """

    def __init__(self, publisher: EventPublisher) -> None:
        self._publisher = publisher

    @activity.defn(name=PUBLISH_RUN_EVENT_ACTIVITY)
    async def publish_run_event(self, event: RunEvent) -> None:
        if self._publisher.enabled:
            await self._publisher.publish_run_event(event)
        else:
            activity.logger.info("no Kafka configured: run event %s not published", event.event_id)
        # Counted here, where the run's end is recorded once, not in workflow code that replays;
        # only after the publish succeeded, so a retried publish does not count the run again.
        metrics.DAG_RUNS_FINISHED.labels(event.dag_id, event.state).inc()

    @activity.defn(name=PUBLISH_TASK_EVENT_ACTIVITY)
    async def publish_task_event(self, event: TaskEvent) -> None:
        """For a try whose activity never reported (it failed outright), so no one else published it."""
        if self._publisher.enabled:
            await self._publisher.publish_task_event(event)
        else:
            activity.logger.info("no Kafka configured: task event %s not published", event.event_id)
        # run_task_try counts the tries it ran; this one never got that far.
        metrics.TASK_TRIES.labels(event.dag_id, event.state).inc()
