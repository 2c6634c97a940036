"""Dead-letter records: the rejected trigger exactly as it came, plus why and where from."""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.structs import ConsumerRecord

log = logging.getLogger(__name__)

ERROR_HEADER = "dagbridge.error"
SOURCE_TOPIC_HEADER = "dagbridge.source.topic"
SOURCE_PARTITION_HEADER = "dagbridge.source.partition"
SOURCE_OFFSET_HEADER = "dagbridge.source.offset"
ROUTE_HEADER = "dagbridge.route"
# Set when the original value was too large for the DLQ: its size in bytes (the record stays readable
# at its source coordinates until the source topic's retention removes it).
VALUE_OMITTED_HEADER = "dagbridge.value-omitted"


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
    """Return once the broker acknowledged the record (the producer uses acks=all); raise otherwise.

    A record too large for the producer or the DLQ topic (a source topic may allow larger records than
    the DLQ) is written without its value, with ``VALUE_OMITTED_HEADER``: retrying could never succeed,
    and the partition's offsets could never be committed past it.
    """
    headers = dead_letter_headers(record, reason, route)
    # The original timestamp, so a record replayed from the DLQ keeps its default logical_date.
    timestamp_ms = record.timestamp if record.timestamp >= 0 else None
    try:
        await producer.send_and_wait(
            topic, value=record.value, key=record.key, timestamp_ms=timestamp_ms, headers=headers
        )
    except MessageSizeTooLargeError as err:
        size = len(record.value or b"")
        log.warning(
            "%s[%d]@%d is too large for the DLQ (%s): writing it without its %d-byte value",
            record.topic, record.partition, record.offset, err, size,
        )  # fmt: skip
        await producer.send_and_wait(
            topic,
            value=b"",
            key=record.key,
            timestamp_ms=timestamp_ms,
            headers=[*headers, (VALUE_OMITTED_HEADER, str(size).encode())],
        )
