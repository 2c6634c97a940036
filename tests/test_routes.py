"""Routes from business topics, against a real Tansu broker, a real Temporal dev server and a real worker."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import fastavro
import pytest
import yaml
from temporalio.client import Client

from bridge.consumer import RouteOutcome
from bridge.dlq import ERROR_HEADER, ROUTE_HEADER, SOURCE_OFFSET_HEADER, SOURCE_TOPIC_HEADER
from bridge.replay import TopicRange, reconcile, replay
from bridge.routes import Routes, load_routes
from schemas.runs import DagRunResult
from schemas.settings import Settings, env_var
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


def dagbridge_cli(settings: Settings, routes_file: Path | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGBRIDGE_")}
    for name in ("temporal_address", "kafka_bootstrap", "trigger_topic", "task_queue"):
        env[env_var(name)] = str(getattr(settings, name))
    if routes_file is not None:
        env[env_var("routes_file")] = str(routes_file)
    return subprocess.run(
        [sys.executable, "-m", "dagbridge.cli", *args],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_replay_fills_exactly_the_gaps_and_reconcile_reports_both_ways(
    bridge_settings: Settings, tansu: TansuBroker, temporal_client: Client, tmp_path: Path
) -> None:
    topic = unique("replayed")
    tansu.create_topics([topic], partitions=1)
    route = {"name": "replayed", "topic": topic, "dag_id": "routed_capped", "run_id": {"path": "payload.id"}}
    routes = write_routes(tmp_path, {"routes": [route]})
    batch = unique("r")
    await produce(
        bridge_settings.kafka_bootstrap, topic, [json.dumps({"id": f"{batch}-{n}", "n": n}).encode() for n in range(8)]
    )
    prefix = f"dagrun:routed_capped:kafka__{batch}-"

    async def started(expected: set[int]) -> None:
        # Visibility lags the starts a little; the replay's own counts say exactly what it started.
        found = {int(workflow_id.rsplit("-", 1)[1]) for workflow_id in await workflow_ids(temporal_client, prefix)}
        assert found == expected

    # Offsets 2, 3 and 4 only: the other five are gaps.
    first = await replay(bridge_settings, routes, temporal_client, TopicRange(topic, from_offset=2, to_offset=5))
    assert (first.records, dict(first.counts)) == (3, {"started": 3})
    await eventually(lambda: started({2, 3, 4}), timeout=10)

    report = await reconcile(bridge_settings, routes, temporal_client, TopicRange(topic))
    assert dict(report.counts) == {"with run": 3, "message without run": 5}
    assert sorted(line.split(" -> ")[1] for line in report.problems) == [f"{prefix}{n}" for n in (0, 1, 5, 6, 7)]

    # The whole topic: exactly the gaps start, the rest are recognised by their run IDs.
    second = await replay(bridge_settings, routes, temporal_client, TopicRange(topic, from_offset=0))
    assert (second.records, dict(second.counts)) == (8, {"started": 5, "duplicate": 3})
    await eventually(lambda: started(set(range(8))), timeout=10)

    # Again, after the fact: nothing new.
    third = await replay(bridge_settings, routes, temporal_client, TopicRange(topic, from_offset=0))
    assert dict(third.counts) == {"duplicate": 8}

    # The route now takes fewer records: the runs of the others have no message any more.
    narrowed_file = tmp_path / "narrowed.yaml"
    narrowed_file.write_text(yaml.safe_dump({"routes": [{**route, "filter": "payload.n < `6`"}]}))
    narrowed = dagbridge_cli(bridge_settings, narrowed_file, "reconcile", "--topic", topic)
    assert narrowed.returncode == 1, narrowed.stderr
    assert narrowed.stdout.strip() == (
        f"reconcile {topic}: 8 records ([0] 0..7): 2 filtered, 2 run without message, 2 unrouted, 6 with run"
    )
    assert sorted(line for line in narrowed.stderr.splitlines() if line.startswith("run without")) == [
        f"run without message: {prefix}{n} (started from {topic}[0]@{n} by route replayed)" for n in (6, 7)
    ]
    clean = dagbridge_cli(bridge_settings, routes_path(tmp_path), "replay", "--topic", topic, "--from-offset", "6")
    assert (clean.returncode, clean.stdout.strip()) == (0, f"replay {topic}: 2 records ([0] 6..7): 2 duplicate")
    # The runs end before the session's worker stops: it waits for the slot exchanges of open runs.
    for n in range(8):
        result = await temporal_client.get_workflow_handle(f"{prefix}{n}", result_type=DagRunResult).result()
        assert result.state == "success"


def routes_path(tmp_path: Path) -> Path:
    return tmp_path / "routes.yaml"


def test_a_wrong_routes_file_stops_the_bridge_with_one_line_per_problem(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    route = {"name": "orders", "topic": "orders", "dag_id": "d"}
    path.write_text(
        yaml.safe_dump({"routes": [{**route, "name": "Orders!"}, {**route, "run_id": {"pth": "key"}, "topic": None}]})
    )
    settings = Settings(temporal_address="127.0.0.1:1", kafka_bootstrap="127.0.0.1:1")
    result = dagbridge_cli(settings, path, "bridge")
    assert result.returncode == 2
    prefix = f"dagbridge: invalid routes file {path}: "
    assert result.stderr.splitlines() == [
        prefix + "routes[0] (Orders!).name: String should match pattern '^[a-z0-9][a-z0-9_.-]*$'",
        prefix + "routes[1] (orders).run_id: must be one of {path: <JMESPath>}, {template: <Jinja>} or {value: <JSON>}",
    ]
    # Past the file's shape, every expression and template is compiled before anything is consumed.
    path.write_text(
        yaml.safe_dump({"routes": [{**route, "filter": "payload.amount >", "conf": {"x": {"template": "{{ key"}}}]})
    )
    result = dagbridge_cli(settings, path, "bridge")
    assert result.returncode == 2
    assert [line.removeprefix(prefix).split(":")[0] for line in result.stderr.splitlines()] == [
        "routes[0] (orders).filter",
        "routes[0] (orders).conf.x",
    ]
    missing = path.with_name("missing.yaml")
    unknown = dagbridge_cli(settings, missing, "replay", "--topic", "t", "--from-offset", "0")
    assert unknown.returncode == 2
    assert (
        unknown.stderr.strip() == f"dagbridge: invalid routes file {missing}: cannot read it: No such file or directory"
    )
