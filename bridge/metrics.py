"""The bridge's Prometheus metrics.

No label takes a value from a trigger: dag_id and run_id come from whoever produces to the
topic, and a series per value would let any producer grow the bridge's memory without end.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError
from prometheus_client import Counter, Gauge, Histogram

POSITION_TIMEOUT_SECONDS = 0.1
END_OFFSETS_TIMEOUT_SECONDS = 1.0

OUTCOMES = ("started", "duplicate", "invalid", "error")

MESSAGES = Counter(
    "dagbridge_trigger_messages",
    "Trigger records handled, by outcome: started a run, duplicate (its run exists already), "
    "invalid (failed validation, sent to the DLQ), error (refused by Temporal, sent to the DLQ).",
    ["outcome"],
)
DLQ_MESSAGES = Counter("dagbridge_dlq_messages", "Records written to the dead-letter topic.")
# From the trigger record's timestamp to Temporal's acknowledgement of the start: includes the
# producer's delay, time queued on the topic, validation and the start call itself.
START_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)
TRIGGER_TO_START = Histogram(
    "dagbridge_trigger_to_start_seconds",
    "Time from a trigger record's timestamp until Temporal acknowledged its run's start.",
    buckets=START_LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge("dagbridge_starts_in_flight", "Trigger records between fetch and their start's acknowledgement.")
CONSUMER_LAG = Gauge(
    "dagbridge_consumer_lag_messages",
    "Records of an assigned partition (trigger or routed topic) that the bridge has not finished: "
    "not fetched yet or in flight.",
    ["topic", "partition"],
)

for _outcome in OUTCOMES:
    # Present at 0 from the start, so rate() and alerts see a series before the first record.
    MESSAGES.labels(_outcome)


def record_outcome(outcome: str, record_timestamp_ms: int) -> None:
    MESSAGES.labels(outcome).inc()
    if outcome == "started" and record_timestamp_ms >= 0:
        TRIGGER_TO_START.observe(max(time.time() - record_timestamp_ms / 1000, 0.0))


class ConsumerLag:
    """Per-partition lag: the broker's high watermark minus what the bridge has handled."""

    def __init__(self) -> None:
        self._reported: set[TopicPartition] = set()

    async def update(self, consumer: AIOKafkaConsumer, in_flight: Mapping[TopicPartition, int]) -> None:
        """Refresh the gauge; every fetch brings the high watermark, so mostly without a request."""
        assigned = consumer.assignment()
        for tp in self._reported - assigned:
            CONSUMER_LAG.remove(tp.topic, str(tp.partition))
        self._reported &= assigned
        ends = await self._end_offsets(consumer, consumer.paused() & assigned)
        for tp in assigned:
            highwater = ends.get(tp, consumer.highwater(tp))
            if highwater is None:
                continue  # not fetched since the assignment: nothing known yet
            try:
                # A partition that was fetched has a valid position, so this does not wait.
                position = await asyncio.wait_for(consumer.position(tp), POSITION_TIMEOUT_SECONDS)
            except (IllegalStateError, TimeoutError):
                continue  # revoked meanwhile, or reset: the next update reports it
            CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(highwater - position, 0) + in_flight.get(tp, 0))
            self._reported.add(tp)

    @staticmethod
    async def _end_offsets(consumer: AIOKafkaConsumer, paused: set[TopicPartition]) -> dict[TopicPartition, int]:
        """Paused partitions (the bridge waits for Temporal) are not fetched: ask for their ends,
        or their lag would stand still exactly while it grows."""
        if not paused:
            return {}
        try:
            return await asyncio.wait_for(consumer.end_offsets(list(paused)), END_OFFSETS_TIMEOUT_SECONDS)
        except (KafkaError, TimeoutError):
            return {}  # Kafka is away too: keep the last known value


ROUTE_OUTCOMES = ("started", "duplicate", "filtered", "dead_lettered")

# Labelled by route name and DAG ID from the routes file only: configuration, never message content.
ROUTE_MESSAGES = Counter(
    "dagbridge_route_messages",
    "Records of routed topics, per route and outcome: started a run, duplicate (its run exists already), "
    "filtered (the route's filter did not take it), dead_lettered (it matched but could not be mapped, "
    "or Temporal refused the start).",
    ["route", "outcome"],
)
UNROUTED_MESSAGES = Counter(
    "dagbridge_unrouted_messages", "Records of routed topics that no route took (ignored, and committed)."
)
ROUTE_TRIGGER_TO_START = Histogram(
    "dagbridge_route_trigger_to_start_seconds",
    "Per route: time from a record's timestamp until Temporal acknowledged its run's start.",
    ["route"],
    buckets=START_LATENCY_BUCKETS,
)
RUNS_IN_FLIGHT = Gauge(
    "dagbridge_dag_runs_in_flight",
    "Open runs of a DAG with max_in_flight_runs in the routes file, as the bridge counts them against the cap.",
    ["dag_id"],
)
FLOW_WAITING = Gauge(
    "dagbridge_flow_waiting_messages",
    "Records waiting for a DAG's in-flight cap or a route's rate limit; their partitions are paused.",
)
PAUSED_PARTITIONS = Gauge(
    "dagbridge_paused_partitions",
    "Assigned partitions the bridge paused: Temporal is away, or a cap or rate is reached.",
)


def declare_routes(routes: list[str], capped_dags: list[str]) -> None:
    """Series at 0 for every route and capped DAG, so rate() and alerts see them before the first record."""
    for route in routes:
        for outcome in ROUTE_OUTCOMES:
            ROUTE_MESSAGES.labels(route, outcome)
        ROUTE_TRIGGER_TO_START.labels(route)
    for dag_id in capped_dags:
        RUNS_IN_FLIGHT.labels(dag_id)


def record_route_outcome(route: str, outcome: str, record_timestamp_ms: int) -> None:
    ROUTE_MESSAGES.labels(route, outcome).inc()
    if outcome == "started" and record_timestamp_ms >= 0:
        ROUTE_TRIGGER_TO_START.labels(route).observe(max(time.time() - record_timestamp_ms / 1000, 0.0))


WATCHER_OUTCOMES = ("event", "filtered", "dead_lettered")

# Labelled by the watcher's <dag_id>.<name> and the DAG ID, from the dags folder: never message content.
WATCHER_MESSAGES = Counter(
    "dagbridge_watcher_messages",
    "Records of AssetWatcher topics, per watcher (<dag_id>.<watcher name>) and outcome: event (made an asset "
    "event), filtered (apply_function said it is not an event, or a tombstone), dead_lettered (apply_function "
    "raised, or the event could not be stored).",
    ["watcher", "outcome"],
)
WATCHER_RUNS = Counter(
    "dagbridge_watcher_runs",
    "What AssetWatcher events did per consumer DAG: started a run, duplicate (its run exists already), "
    "queued (handed to the DAG's assets:<dag_id> workflow), error (Temporal refused the start).",
    ["dag_id", "outcome"],
)
WATCHER_TRIGGER_TO_START = Histogram(
    "dagbridge_watcher_trigger_to_start_seconds",
    "Per consumer DAG: time from an AssetWatcher record's timestamp until Temporal acknowledged its run's start.",
    ["dag_id"],
    buckets=START_LATENCY_BUCKETS,
)


def declare_watchers(watchers: list[str]) -> None:
    """Series at 0 for every served watcher, so rate() and alerts see them before the first record."""
    for watcher in watchers:
        for outcome in WATCHER_OUTCOMES:
            WATCHER_MESSAGES.labels(watcher, outcome)


def record_watcher_run(dag_id: str, outcome: str, record_timestamp_ms: int) -> None:
    WATCHER_RUNS.labels(dag_id, outcome).inc()
    if outcome == "started" and record_timestamp_ms >= 0:
        WATCHER_TRIGGER_TO_START.labels(dag_id).observe(max(time.time() - record_timestamp_ms / 1000, 0.0))
