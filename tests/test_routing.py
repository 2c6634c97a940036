"""The pure mapping from a record to the runs its routes ask for (no servers)."""

from __future__ import annotations

import io
import json
import struct
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.routes import RoutesFileError, parse_routes
from bridge.routing import Record, Router, RouteVerdict
from schemas.runs import RunOptions

TIMESTAMP_MS = 1_740_830_400_000  # 2025-03-01T12:00:00Z


def router(*routes: dict[str, Any], base: Path = Path(".")) -> Router:
    return Router(parse_routes({"routes": list(routes)}, base=base), max_conf_bytes=1024, options=RunOptions())


def record(payload: Any, *, topic: str = "orders", offset: int = 7, key: bytes | None = b"k", **extra: Any) -> Record:
    value = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Record(topic, 1, offset, TIMESTAMP_MS, key, value, extra.get("headers", ()))


def only(verdicts: list[RouteVerdict]) -> RouteVerdict:
    [verdict] = verdicts
    return verdict


ORDERS = {"name": "orders", "topic": "orders", "dag_id": "process_order"}


def test_defaults_are_the_trigger_topics_run_id_and_the_record_timestamp() -> None:
    request = only(router(ORDERS).route(record({"id": 1}))).request
    assert request is not None
    assert (request.dag_id, request.run_id, request.conf) == ("process_order", "kafka__orders-1-7", {})
    assert request.logical_date == datetime(2025, 3, 1, 12, tzinfo=UTC)


def test_filters_see_payload_key_headers_and_coordinates() -> None:
    route = {
        **ORDERS,
        "filter": "payload.amount > `10` && key == 'k' && headers.region == 'eu' && partition == `1`",
    }
    taken = router(route).route(record({"amount": 11}, headers=[("region", b"eu")]))
    assert only(taken).request is not None
    for payload, headers in (({"amount": 10}, [("region", b"eu")]), ({"amount": 11}, [("region", b"us")])):
        assert only(router(route).route(record(payload, headers=headers))) == RouteVerdict("orders")


@pytest.mark.parametrize(
    ("value", "truthy"),
    [(None, False), (False, False), ("", False), ([], False), ({}, False), (0, True), ("x", True), ([0], True)],
)
def test_a_filter_follows_jmespath_truthiness(value: Any, truthy: bool) -> None:
    verdict = only(router({**ORDERS, "filter": "payload.flag"}).route(record({"flag": value})))
    assert (verdict.request is not None) is truthy


def test_conf_run_id_and_logical_date_come_from_the_record() -> None:
    route = {
        **ORDERS,
        "run_id": {"template": "{{ payload.id }}-{{ key }}"},
        "logical_date": {"path": "payload.at"},
        "conf_from": {"path": "payload.meta"},
        "conf": {"id": {"path": "payload.id"}, "fixed": {"value": [1, 2]}},
    }
    request = only(
        router(route).route(record({"id": "A", "at": "2025-01-02T03:04:05+01:00", "meta": {"m": 1}}))
    ).request
    assert request is not None
    assert request.run_id == "kafka__A-k"
    assert request.logical_date == datetime(2025, 1, 2, 2, 4, 5, tzinfo=UTC)
    assert request.conf == {"m": 1, "id": "A", "fixed": [1, 2]}


@pytest.mark.parametrize(
    ("route", "payload", "reason"),
    [
        ({"run_id": {"path": "payload.id"}}, {}, "run_id: payload.id is null (nothing found)"),
        ({"run_id": {"path": "payload.id"}}, {"id": "a/b"}, "run_id 'kafka__a/b': String should match pattern"),
        ({"logical_date": {"path": "payload.at"}}, {"at": "2025-01-01"}, "logical_date: "),
        ({"conf_from": {"path": "payload.items"}}, {"items": [1]}, "conf_from: payload.items is a list, not an object"),
        ({"conf": {"big": {"path": "payload.blob"}}}, {"blob": "x" * 2000}, "conf: is 2010 bytes as JSON, more than"),
        ({"priority": {"path": "payload.p"}}, {"p": 9}, "priority: '9' is not an integer from 1 to 5"),
        ({"conf": {"t": {"template": "{{ payload.nope }}"}}}, {}, "conf.t: template failed"),
        ({"filter": "abs(payload.name)"}, {"name": "x"}, "filter: "),
    ],
)
def test_a_record_that_cannot_be_mapped_gets_a_reason(route: dict[str, Any], payload: Any, reason: str) -> None:
    verdict = only(router({**ORDERS, **route}).route(record(payload)))
    assert verdict.request is None
    assert verdict.error is not None and verdict.error.startswith(f"route orders: {reason}"), verdict.error


def test_a_payload_that_is_not_json_is_dead_lettered_and_a_tombstone_is_null() -> None:
    assert only(router(ORDERS).route(record(b"{"))).error.startswith("route orders: payload: not JSON")  # type: ignore[union-attr]
    tombstone = Record("orders", 0, 1, TIMESTAMP_MS, b"k", None, ())
    assert only(router({**ORDERS, "filter": "payload == null"}).route(tombstone)).request is not None


def test_topics_by_name_and_by_pattern_and_other_topics_untouched() -> None:
    routes = router(ORDERS, {"name": "any", "pattern": r"orders\.(eu|us)", "dag_id": "regional"})
    assert [v.route for v in routes.route(record({}, topic="orders.eu"))] == ["any"]
    assert [v.route for v in routes.route(record({}, topic="orders"))] == ["orders"]
    assert routes.route(record({}, topic="orders.eu.archive")) == []


def test_priority_from_a_header_and_weight() -> None:
    route = {**ORDERS, "priority": {"path": "headers.priority"}, "priority_weight": {"value": 7}}
    request = only(router(route).route(record({}, headers=[("priority", b"1")]))).request
    assert request is not None and (request.options.priority_key, request.options.priority_weight) == (1, 7)


def test_avro_in_confluent_wire_format(tmp_path: Path) -> None:
    schema = {"type": "record", "name": "F", "fields": [{"name": "path", "type": "string"}]}
    (tmp_path / "f.avsc").write_text(json.dumps(schema))
    routes = router({**ORDERS, "avro": {"schema_file": "f.avsc"}, "conf_from": {"path": "payload"}}, base=tmp_path)
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(schema), {"path": "/a"})
    framed = b"\x00" + struct.pack(">I", 3) + body.getvalue()
    assert only(routes.route(record(framed))).request.conf == {"path": "/a"}  # type: ignore[union-attr]
    assert "Confluent's wire format" in (only(routes.route(record(body.getvalue()))).error or "")


# No deadline: the machine is shared, and what is checked is the mapping, not its speed.
@settings(deadline=None)
@given(
    order_id=st.text(alphabet="abcXYZ019_.-", min_size=1, max_size=40).filter(lambda s: ".." not in s),
    offsets=st.lists(st.integers(min_value=0, max_value=10**9), min_size=2, max_size=5),
)
def test_a_producers_retry_maps_to_the_same_run_wherever_it_lands(order_id: str, offsets: list[int]) -> None:
    routes = router({**ORDERS, "run_id": {"path": "payload.id"}})
    run_ids = {only(routes.route(record({"id": order_id}, offset=offset))).request.run_id for offset in offsets}  # type: ignore[union-attr]
    assert run_ids == {f"kafka__{order_id}"}


def test_route_names_must_be_unique() -> None:
    with pytest.raises(RoutesFileError) as raised:
        parse_routes({"routes": [ORDERS, ORDERS]}, base=Path("."))
    assert raised.value.lines == ["routes: file: route names must be unique: orders repeated"]
