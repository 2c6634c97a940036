"""Routes from business topics, against a real Tansu broker, a real Temporal dev server and a real worker."""

from __future__ import annotations

import io
import json
import struct
from datetime import datetime
from pathlib import Path
from typing import Any

import fastavro
import pytest
import yaml
from temporalio.client import Client

from bridge.consumer import RouteOutcome
from bridge.dlq import ERROR_HEADER, ROUTE_HEADER, SOURCE_OFFSET_HEADER, SOURCE_TOPIC_HEADER
from bridge.routes import Routes, load_routes
from schemas.runs import DagRunResult
from schemas.settings import Settings
from tests.bridge_fixtures import (
    committed_offsets,
    end_offsets,
    eventually,
    produce,
    read_records,
    running_bridge,
    unique,
    workflow_ids,
)
from tests.servers import TansuBroker

FILE_SCHEMA = {
    "type": "record",
    "name": "FileLanded",
    "fields": [
        {"name": "path", "type": "string"},
        {"name": "size", "type": "long"},
        {"name": "landed_at", "type": "string"},
    ],
}
SCHEMA_ID = 42


def confluent_avro(record: dict[str, Any]) -> bytes:
    """What a Confluent Avro serializer writes: magic byte 0, the schema ID, the Avro body."""
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(FILE_SCHEMA), record)
    return b"\x00" + struct.pack(">I", SCHEMA_ID) + body.getvalue()


def order(order_id: str, amount: int, customer: str = "ada") -> bytes:
    return json.dumps({"order_id": order_id, "amount": amount, "customer": {"name": customer}}).encode()


@pytest.fixture
def business_topics(bridge_settings: Settings, tansu: TansuBroker) -> tuple[str, str]:
    orders, files = unique("orders"), unique("files")
    tansu.create_topics([orders, files], partitions=2)
    return orders, files


def write_routes(tmp_path: Path, document: dict[str, Any]) -> Routes:
    path = tmp_path / "routes.yaml"
    path.write_text(yaml.safe_dump(document))
    return load_routes(path)


async def assert_all_committed(settings: Settings, *topics: str) -> None:
    for topic in topics:
        committed = await committed_offsets(settings.kafka_bootstrap, settings.consumer_group, topic)
        assert committed == await end_offsets(settings.kafka_bootstrap, topic), topic


async def results(client: Client, workflow_ids: list[str]) -> dict[str, Any]:
    """The echo task's return value of each run: the conf and logical date the run got."""
    found = {}
    for workflow_id in workflow_ids:
        result = await client.get_workflow_handle(workflow_id, result_type=DagRunResult).result()
        assert result.state == "success", result
        [echo] = result.task_instances
        found[workflow_id] = echo.xcom["return_value"]
    return found


async def test_two_business_topics_start_three_dags_through_filters_and_conf_mapping(
    bridge_settings: Settings, business_topics: tuple[str, str], temporal_client: Client, tmp_path: Path
) -> None:
    orders, files = business_topics
    (tmp_path / "file_landed.avsc").write_text(json.dumps(FILE_SCHEMA))
    routes = write_routes(
        tmp_path,
        {
            "routes": [
                {
                    "name": "big-orders",
                    "topic": orders,
                    "filter": "payload.amount >= `100`",
                    "dag_id": "routed_orders",
                    "run_id": {"path": "payload.order_id"},
                    "conf": {
                        "order_id": {"path": "payload.order_id"},
                        "customer": {"path": "payload.customer.name"},
                        "label": {"template": "{{ payload.customer.name }} paid {{ payload.amount }}"},
                        "source": {"value": "orders"},
                    },
                },
                {
                    "name": "eu-orders",
                    "topic": orders,
                    "filter": "headers.region == 'eu'",
                    "dag_id": "routed_eu_orders",
                    "run_id": {"template": "eu-{{ key }}"},
                    "conf_from": {"path": "payload"},
                },
                {
                    "name": "landed-files",
                    # A pattern: one group serves names and patterns alike.
                    "pattern": f"{files}|{files}-archive",
                    "avro": {"schema_file": "file_landed.avsc"},
                    "dag_id": "routed_files",
                    "logical_date": {"path": "payload.landed_at"},
                    "conf": {"path": {"path": "payload.path"}, "bytes": {"path": "payload.size"}},
                },
            ]
        },
    )
    batch = unique("o")
    eu, us = [("region", b"eu")], [("region", b"us")]
    # o-1: big and EU (two DAGs); o-2: small and US (no route: ignored); o-3: big, US; o-1 again: a
    # producer's retry (same key and payload, a new offset); then one that is not JSON.
    await produce(
        bridge_settings.kafka_bootstrap,
        orders,
        [order(f"{batch}-1", 150), order(f"{batch}-2", 50), order(f"{batch}-3", 500, "bob"), order(f"{batch}-1", 150)],
        keys=[f"{batch}-1".encode(), f"{batch}-2".encode(), f"{batch}-3".encode(), f"{batch}-1".encode()],
        headers=[eu, us, us, eu],
    )
    [not_json] = await produce(
        bridge_settings.kafka_bootstrap, orders, [b"{oops"], keys=[b"bad"], headers=[eu], partition=0
    )
    landed = {"path": f"/landing/{batch}.csv", "size": 1234, "landed_at": "2025-03-01T12:00:00Z"}
    [file_record] = await produce(bridge_settings.kafka_bootstrap, files, [confluent_avro(landed)], partition=1)

    expected = {
        f"dagrun:routed_orders:kafka__{batch}-1",
        f"dagrun:routed_orders:kafka__{batch}-3",
        f"dagrun:routed_eu_orders:kafka__eu-{batch}-1",
        f"dagrun:routed_files:kafka__{files}-1-{file_record.offset}",
    }
    async with running_bridge(bridge_settings, routes) as bridge:
        dead = await read_records(
            bridge_settings.kafka_bootstrap, bridge_settings.dlq_topic, until=lambda records: len(records) >= 2
        )
        echoed = await results(temporal_client, sorted(expected))
        await eventually(lambda: assert_all_committed(bridge_settings, orders, files), timeout=30)

    assert echoed[f"dagrun:routed_orders:kafka__{batch}-3"]["conf"] == {
        "order_id": f"{batch}-3",
        "customer": "bob",
        "label": "bob paid 500",
        "source": "orders",
    }
    assert echoed[f"dagrun:routed_eu_orders:kafka__eu-{batch}-1"]["conf"] == json.loads(order(f"{batch}-1", 150))
    assert echoed[f"dagrun:routed_files:kafka__{files}-1-{file_record.offset}"] == {
        "conf": {"path": landed["path"], "bytes": 1234},
        "logical_date": "2025-03-01T12:00:00+00:00",
    }
    started = {
        workflow_id
        for prefix in ("dagrun:routed_orders:", "dagrun:routed_eu_orders:", "dagrun:routed_files:")
        for workflow_id in await workflow_ids(temporal_client, prefix)
        if batch in workflow_id or files in workflow_id
    }
    assert started == expected
    assert bridge.route_outcomes == {
        ("big-orders", RouteOutcome.STARTED): 2,
        ("big-orders", RouteOutcome.DUPLICATE): 1,  # the producer's retry of o-1
        ("big-orders", RouteOutcome.FILTERED): 1,
        ("big-orders", RouteOutcome.DEAD_LETTERED): 1,
        ("eu-orders", RouteOutcome.STARTED): 1,
        ("eu-orders", RouteOutcome.DUPLICATE): 1,
        ("eu-orders", RouteOutcome.FILTERED): 2,
        ("eu-orders", RouteOutcome.DEAD_LETTERED): 1,
        ("landed-files", RouteOutcome.STARTED): 1,
    }
    assert bridge.unrouted == 1  # o-2
    assert bridge.outcomes == {}  # nothing came on the trigger topic

    by_route = {dict(record.headers)[ROUTE_HEADER].decode(): record for record in dead}
    assert set(by_route) == {"big-orders", "eu-orders"}
    for route, record in by_route.items():
        headers = dict(record.headers)
        assert (record.key, record.value) == (b"bad", b"{oops")
        assert headers["region"] == b"eu", "the original headers are kept"
        assert headers[ERROR_HEADER].decode().startswith(f"route {route}: payload: not JSON")
        assert (headers[SOURCE_TOPIC_HEADER].decode(), int(headers[SOURCE_OFFSET_HEADER])) == (orders, not_json.offset)


def max_open_at_once(executions: list[tuple[datetime, datetime]]) -> int:
    """The most runs open at one moment, from Temporal's start and close times."""
    # At a tie a close counts first: the bridge starts a run only after it saw another close.
    moments = sorted([(start, 1) for start, _ in executions] + [(close, -1) for _, close in executions])
    open_now = most = 0
    for _, change in sorted(moments, key=lambda moment: (moment[0], moment[1])):
        open_now += change
        most = max(most, open_now)
    return most


async def test_a_cap_of_two_runs_in_flight_pauses_instead_of_losing_any_of_fifty_records(
    bridge_settings: Settings, tansu: TansuBroker, temporal_client: Client, tmp_path: Path
) -> None:
    topic = unique("capped")
    tansu.create_topics([topic], partitions=2)
    routes = write_routes(
        tmp_path,
        {
            "routes": [{"name": "capped", "topic": topic, "dag_id": "routed_capped"}],
            "dags": {"routed_capped": {"max_in_flight_runs": 2}},
        },
    )
    count = 50
    await produce(bridge_settings.kafka_bootstrap, topic, [json.dumps({"n": n}).encode() for n in range(count)])
    prefix = f"dagrun:routed_capped:kafka__{topic}-"

    async def all_closed() -> list[tuple[datetime, datetime]]:
        executions = [
            (execution.start_time, execution.close_time)
            async for execution in temporal_client.list_workflows(f"WorkflowId STARTS_WITH '{prefix}'")
        ]
        assert len(executions) == count and all(close is not None for _, close in executions), len(executions)
        return executions  # type: ignore[return-value]

    async with running_bridge(bridge_settings, routes) as bridge:
        executions = await eventually(all_closed, timeout=180, interval=1)
        await eventually(lambda: assert_all_committed(bridge_settings, topic), timeout=30)
    assert bridge.route_outcomes == {("capped", RouteOutcome.STARTED): count}
    assert max_open_at_once(executions) == 2
