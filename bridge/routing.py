"""From one Kafka record of a business topic to the DAG runs its routes ask for.

Pure: no I/O, so the same mapping serves the bridge, ``dagbridge replay`` and ``dagbridge
reconcile``, and a record always maps to the same runs (the same run IDs) however often it is read.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import fastavro
from jinja2 import TemplateError
from jmespath.exceptions import JMESPathError
from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_jsonable_python

from bridge.routes import CompiledRoute, CompiledValue, Routes
from schemas.messages import (
    KAFKA_RUN_ID_PREFIX,
    InvalidTrigger,
    LogicalDate,
    RunId,
    bounded_conf,
    parse_trigger,
    record_time,
)
from schemas.routes import MAX_PRIORITY_KEY
from schemas.runs import DagRunRequest, RunOptions

CONFLUENT_MAGIC = 0
CONFLUENT_HEADER_BYTES = 5  # magic byte, then the schema ID as a 4-byte big-endian integer

_RUN_ID = TypeAdapter(RunId)
_LOGICAL_DATE = TypeAdapter(LogicalDate)


class RecordView(Protocol):
    """What routes read of a record: fields that aiokafka's ``ConsumerRecord`` has."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


def parse_trigger_record(record: RecordView, *, max_conf_bytes: int, options: RunOptions) -> DagRunRequest:
    """The run a trigger-topic record asks for, as the bridge and a replay both read it.

    Raises ``InvalidTrigger`` with the reason the record goes to the DLQ.
    """
    return parse_trigger(
        record.value,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp_ms=record.timestamp,
        max_conf_bytes=max_conf_bytes,
        options=options,
    )


@dataclass(frozen=True)
class Record:
    """A record built by hand (tests, tools): the same fields."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()


@dataclass(frozen=True)
class RouteVerdict:
    """One route's answer for one record: a run to start, filtered out (neither set), or why it cannot map."""

    route: str
    request: DagRunRequest | None = None
    error: str | None = None


class Router:
    """Matches records to routes; the routes of each topic are looked up once per topic name."""

    def __init__(self, routes: Routes, *, max_conf_bytes: int, options: RunOptions) -> None:
        self._routes = routes
        self._max_conf_bytes = max_conf_bytes
        self._options = options
        self._by_topic: dict[str, list[CompiledRoute]] = {}

    def routes_of(self, topic: str) -> list[CompiledRoute]:
        routes = self._by_topic.get(topic)
        if routes is None:
            routes = self._by_topic[topic] = [route for route in self._routes.routes if route.reads(topic)]
        return routes

    def route(self, record: RecordView) -> list[RouteVerdict]:
        """Every route of the record's topic, with its verdict, in the routes file's order."""
        routes = self.routes_of(record.topic)
        if not routes:
            return []
        document = _Document(record)
        return [self._verdict(route, document) for route in routes]

    def _verdict(self, route: CompiledRoute, document: _Document) -> RouteVerdict:
        try:
            view = document.view(route)
            if route.filter is not None and not _truthy(_search(route.filter, view, "filter")):
                return RouteVerdict(route.name)
            request = self._request(route, view, document.record)
        except InvalidTrigger as err:
            return RouteVerdict(route.name, error=InvalidTrigger(f"route {route.name}: {err.reason}").reason)
        return RouteVerdict(route.name, request=request)

    def _request(self, route: CompiledRoute, view: dict[str, Any], record: RecordView) -> DagRunRequest:
        priority = _integer(_value(route.priority, view, "priority"), "priority", 1, MAX_PRIORITY_KEY)
        priority_weight = _integer(_value(route.priority_weight, view, "priority_weight"), "priority_weight")
        options = self._options
        if priority is not None or priority_weight is not None:
            options = options.model_copy(update={"priority_key": priority, "priority_weight": priority_weight or 0})
        return DagRunRequest(
            dag_id=route.route.dag_id,
            run_id=_run_id(route, view, record),
            logical_date=_logical_date(route, view, record),
            conf=self._conf(route, view),
            run_type=route.route.run_type,
            options=options,
        )

    def _conf(self, route: CompiledRoute, view: dict[str, Any]) -> dict[str, Any]:
        conf: dict[str, Any] = {}
        if route.conf_from is not None:
            base = _value(route.conf_from, view, "conf_from")
            if not isinstance(base, dict):
                raise InvalidTrigger(f"conf_from: {route.conf_from.source} is {_kind(base)}, not an object")
            conf.update(base)
        for key, spec in route.conf.items():
            conf[key] = _value(spec, view, f"conf.{key}")
        # Avro brings dates, decimals and bytes: the conf must be plain JSON for Airflow and event consumers.
        jsonable = to_jsonable_python(conf, bytes_mode="base64")
        try:
            return bounded_conf(jsonable, self._max_conf_bytes)
        except ValueError as err:
            raise InvalidTrigger(f"conf: {err}") from None


class _Document:
    """The record as expression input; the payload is decoded once per format, when a route needs it."""

    def __init__(self, record: RecordView) -> None:
        self.record = record
        headers: dict[str, str] = {}
        for name, value in record.headers:
            headers[name] = value.decode("utf-8", "replace") if value is not None else ""
        self._base = {
            "key": record.key.decode("utf-8", "replace") if record.key is not None else None,
            "headers": headers,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "timestamp": record.timestamp,
        }
        self._views: dict[int, dict[str, Any]] = {}

    def view(self, route: CompiledRoute) -> dict[str, Any]:
        """Raises ``InvalidTrigger`` when the payload cannot be decoded as the route says."""
        fmt = id(route.avro_schema)
        view = self._views.get(fmt)
        if view is None:
            payload = _decode(route, self.record.value)
            view = self._views[fmt] = {"payload": payload, **self._base}
        return view


def _decode(route: CompiledRoute, value: bytes | None) -> Any:
    if not value:
        return None  # a tombstone: routes may still match on key and headers
    avro = route.route.avro
    if avro is None:
        try:
            return json.loads(value)
        except (UnicodeDecodeError, ValueError) as err:
            raise InvalidTrigger(f"payload: not JSON: {err}") from None
    data = value
    if avro.confluent_header:
        if len(value) < CONFLUENT_HEADER_BYTES or value[0] != CONFLUENT_MAGIC:
            raise InvalidTrigger("payload: not in Confluent's wire format (magic byte 0 and a 4-byte schema ID)")
        data = value[CONFLUENT_HEADER_BYTES:]
    buffer = io.BytesIO(data)
    try:
        payload = fastavro.schemaless_reader(buffer, route.avro_schema, None)
    except Exception as err:  # fastavro raises whatever the bytes lead it into (EOFError, ValueError, ...)
        raise InvalidTrigger(f"payload: not Avro of {avro.schema_file}: {type(err).__name__}: {err}") from None
    if buffer.tell() != len(data):
        raise InvalidTrigger(f"payload: {len(data) - buffer.tell()} bytes left over after the Avro record")
    return payload


def _search(parsed: Any, view: dict[str, Any], field: str) -> Any:
    try:
        return parsed.search(view)
    except JMESPathError as err:
        raise InvalidTrigger(f"{field}: {' '.join(str(err).split())}") from None


def _value(spec: CompiledValue | None, view: dict[str, Any], field: str) -> Any:
    if spec is None:
        return None
    if spec.path is not None:
        return _search(spec.path, view, field)
    if spec.template is not None:
        try:
            return spec.template.render(view)
        except TemplateError as err:
            raise InvalidTrigger(f"{field}: template failed: {err}") from None
    return spec.literal


def _truthy(value: Any) -> bool:
    # JMESPath's own notion of false: null, false, and empty strings, lists and objects (0 is true).
    return not (value is None or value is False or value in ("", [], {}))


def _kind(value: Any) -> str:
    return "null (nothing found)" if value is None else f"a {type(value).__name__}"


def _run_id(route: CompiledRoute, view: dict[str, Any], record: RecordView) -> str:
    if route.run_id is None:
        run_id = f"{KAFKA_RUN_ID_PREFIX}{record.topic}-{record.partition}-{record.offset}"
    else:
        value = _value(route.run_id, view, "run_id")
        if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
            raise InvalidTrigger(f"run_id: {route.run_id.source} is {_kind(value)}, not a string or an integer")
        run_id = f"{KAFKA_RUN_ID_PREFIX}{value}"
    try:
        return _RUN_ID.validate_python(run_id)
    except ValidationError as err:
        raise InvalidTrigger(f"run_id {run_id[:100]!r}: {_messages(err)}") from None


def _logical_date(route: CompiledRoute, view: dict[str, Any], record: RecordView) -> datetime | None:
    if route.logical_date is None:
        return record_time(record.timestamp)
    value = _value(route.logical_date, view, "logical_date")
    if value is None:
        raise InvalidTrigger(f"logical_date: {route.logical_date.source} found nothing")
    try:
        return _LOGICAL_DATE.validate_python(value)
    except ValidationError as err:
        raise InvalidTrigger(f"logical_date: {_messages(err)}") from None


def _messages(err: ValidationError) -> str:
    # The value validated is the field itself: no location to name, and never the input (it can be large).
    return "; ".join(error["msg"].removeprefix("Value error, ") for error in err.errors(include_url=False))


def _integer(value: Any, field: str, low: int | None = None, high: int | None = None) -> int | None:
    """An integer, or a string of one (header values are strings); None when the spec found nothing."""
    if value is None:
        return None
    try:
        number = int(value) if isinstance(value, int | str) and not isinstance(value, bool) else None
    except ValueError:
        number = None
    if number is None or (low is not None and number < low) or (high is not None and number > high):
        bounds = f" from {low} to {high}" if low is not None else ""
        raise InvalidTrigger(f"{field}: {str(value)[:50]!r} is not an integer{bounds}")
    return number
