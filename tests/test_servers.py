"""The real servers of ``tests.servers`` start and do what the integration tests rely on."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

from tests.servers import TansuBroker, TemporalDevServer


@pytest.mark.asyncio
async def test_temporal_dev_server_serves_the_default_namespace(tmp_path: Path) -> None:
    with TemporalDevServer(tmp_path) as temporal:
        client = await Client.connect(temporal.address)
        response = await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"))

    assert response.namespace_info.name == "default"


@pytest.mark.asyncio
async def test_tansu_delivers_through_a_consumer_group_with_manual_commit(tmp_path: Path) -> None:
    with TansuBroker(tmp_path) as broker:
        broker.create_topics(["smoke"], partitions=4)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait("smoke", b"hello", key=b"k", headers=[("trace", b"t1")])
        finally:
            await producer.stop()

        consumer = AIOKafkaConsumer(
            "smoke",
            bootstrap_servers=broker.bootstrap,
            group_id="smoke",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            # Tansu holds every first JoinGroup for about 5 s before answering.
            message = await asyncio.wait_for(consumer.getone(), timeout=30)
            await consumer.commit()
            committed = await consumer.committed(TopicPartition("smoke", message.partition))
        finally:
            await consumer.stop()

    assert (message.key, message.value, message.headers) == (b"k", b"hello", (("trace", b"t1"),))
    assert committed == message.offset + 1
