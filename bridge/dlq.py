"""Dead-letter records: the rejected trigger exactly as it came, plus why and where from."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

ERROR_HEADER = "dagbridge.error"
SOURCE_TOPIC_HEADER = "dagbridge.source.topic"
SOURCE_PARTITION_HEADER = "dagbridge.source.partition"
SOURCE_OFFSET_HEADER = "dagbridge.source.offset"
ROUTE_HEADER = "dagbridge.route"


def dead_letter_headers(
    record: ConsumerRecord[bytes, bytes], reason: str, route: str | None = None
) -> list[tuple[str, bytes]]:
    """The original headers first and unchanged, then dagbridge's own (the route's name for a routed record)."""
    return [
        *record.headers,
        (ERROR_HEADER, reason.encode()),
        (SOURCE_TOPIC_HEADER, record.topic.encode()),
        (SOURCE_PARTITION_HEADER, str(record.partition).encode()),
        (SOURCE_OFFSET_HEADER, str(record.offset).encode()),
        *([(ROUTE_HEADER, route.encode())] if route is not None else []),
    ]


async def send_dead_letter(
    producer: AIOKafkaProducer,
    topic: str,
    record: ConsumerRecord[bytes, bytes],
    reason: str,
    *,
    route: str | None = None,
) -> None:
    """Return once the broker acknowledged the record (the producer uses acks=all); raise otherwise."""
    await producer.send_and_wait(
        topic,
        value=record.value,
        key=record.key,
        # The original timestamp, so a record replayed from the DLQ keeps its default logical_date.
        timestamp_ms=record.timestamp if record.timestamp >= 0 else None,
        headers=dead_letter_headers(record, reason, route),
    )
