"""What ``dagbridge trigger`` and ``dagbridge events`` do: Kafka from a terminal."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from infra.kafka import kafka_options, started
from schemas.ids import dag_run_workflow_id
from schemas.messages import SCHEMA_VERSION, RunEvent, TaskEvent, TriggerMessage
from schemas.settings import Settings


@dataclass(frozen=True)
class SentTrigger:
    topic: str
    partition: int
    offset: int
    dag_id: str
    run_id: str

    @property
    def workflow_id(self) -> str:
        return dag_run_workflow_id(self.dag_id, self.run_id)


async def send_trigger(settings: Settings, message: TriggerMessage) -> SentTrigger:
    """Produce one trigger (acks=all) and tell which run it will start; raises ``KafkaUnreachable``."""
    producer = await started(AIOKafkaProducer(**kafka_options(settings), acks="all"), settings)
    try:
        sent = await producer.send_and_wait(settings.trigger_topic, message.model_dump_json(exclude_none=True).encode())
    finally:
        await producer.stop()
    run_id = message.run_id_at(sent.topic, sent.partition, sent.offset)
    return SentTrigger(sent.topic, sent.partition, sent.offset, message.dag_id, run_id)


def trigger_message(
    dag_id: str,
    *,
    conf: dict[str, Any] | None = None,
    run_id: str | None = None,
    logical_date: datetime | None = None,
    idempotency_key: str | None = None,
    max_conf_bytes: int,
) -> TriggerMessage:
    """The message the bridge will accept; raises ``ValidationError`` with the bridge's reasons."""
    fields: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "dag_id": dag_id}
    optional = {
        "conf": conf,
        "run_id": run_id,
        "logical_date": logical_date.isoformat() if logical_date else None,
        "idempotency_key": idempotency_key,
    }
    fields.update({name: value for name, value in optional.items() if value is not None})
    return TriggerMessage.model_validate_json(json.dumps(fields), context={"max_conf_bytes": max_conf_bytes})


Event = TaskEvent | RunEvent


async def read_events(settings: Settings, *, follow: bool, run_id: str | None = None) -> AsyncIterator[Event]:
    """Task and run events from the start of their topics, each event_id once.

    Reads without a consumer group, so it never moves anyone's committed offsets. Without
    ``follow`` it stops at the end offsets it found when it started. Raises ``KafkaUnreachable``.
    """
    topics = {settings.task_events_topic: TaskEvent, settings.run_events_topic: RunEvent}
    consumer = await started(
        AIOKafkaConsumer(**kafka_options(settings), enable_auto_commit=False, auto_offset_reset="earliest"), settings
    )
    try:
        partitions = await _partitions(consumer, topics, wait=follow)
        if not partitions:
            return
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = {} if follow else await consumer.end_offsets(partitions)
        seen: set[str] = set()
        while follow or await _behind(consumer, ends):
            batches = await consumer.getmany(timeout_ms=500)
            # Two topics have no common order; the time each event was produced is the best one.
            for record in sorted((r for records in batches.values() for r in records), key=lambda r: r.timestamp):
                event = topics[record.topic].model_validate_json(record.value)
                if event.event_id in seen or (run_id is not None and event.run_id != run_id):
                    continue
                seen.add(event.event_id)
                yield event
    finally:
        await consumer.stop()


async def _behind(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return True
    return False


async def _partitions(consumer: AIOKafkaConsumer, topics: dict[str, Any], *, wait: bool) -> list[TopicPartition]:
    """The partitions of the event topics that exist; with ``wait``, until at least one does."""
    while True:
        await consumer.topics()  # refreshes the cluster metadata
        found = [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if found or not wait:
            return found
        await asyncio.sleep(1)


def describe(event: Event) -> str:
    """One line for a person reading a terminal."""
    if isinstance(event, TaskEvent):
        label = event.task_id if event.map_index < 0 else f"{event.task_id}[{event.map_index}]"
        line = (
            f"task  {event.dag_id} {event.run_id} {label} try {event.try_number}: "
            f"{event.state} in {event.duration_seconds:.2f} s"
        )
        return line + (f" ({event.error.type}: {event.error.message})" if event.error else "")
    tasks = ", ".join(
        f"{ti.task_id if ti.map_index < 0 else f'{ti.task_id}[{ti.map_index}]'}={ti.state}"
        for ti in event.task_instances
    )
    line = f"run   {event.dag_id} {event.run_id}: {event.state}" + (f" [{tasks}]" if tasks else "")
    return line + (f" ({event.error})" if event.error else "")
