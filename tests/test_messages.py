"""The trigger validator, the event models, their JSON Schema files, and the offset bookkeeping."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra.kafka import kafka_options
from schemas.json_schema import SCHEMA_DIR, json_schemas
from schemas.messages import (
    InvalidTrigger,
    RunEvent,
    TaskEvent,
    parse_trigger,
)
from schemas.runs import (
    DagRunContext,
    DagRunRequest,
    DagRunResult,
    RunOptions,
    TaskError,
    TaskInstanceResult,
    TaskState,
    TaskTryRequest,
    TaskTryResult,
    XComEntry,
)
from schemas.settings import Settings
from tests.bad_triggers import BAD_TRIGGERS

RECORD = {"topic": "dag-triggers", "partition": 1, "offset": 42, "timestamp_ms": 1_735_689_600_000}
RECORD_TIME = datetime(2025, 1, 1, tzinfo=UTC)
TRIGGER_SCHEMA = json.loads((SCHEMA_DIR / "dag-trigger.schema.json").read_text())


def parse(message: Any, **overrides: Any) -> DagRunRequest:
    raw = message if isinstance(message, bytes) else json.dumps(message).encode()
    return parse_trigger(raw, **{**RECORD, **overrides})


def test_defaults_come_from_the_record() -> None:
    request = parse({"schema_version": 1, "dag_id": "etl"})

    assert (request.dag_id, request.run_id) == ("etl", "kafka__dag-triggers-1-42")
    assert request.logical_date == RECORD_TIME
    assert request.conf == {}


def test_idempotency_key_names_the_run_and_an_explicit_run_id_wins() -> None:
    assert parse({"schema_version": 1, "dag_id": "etl", "idempotency_key": "order-7"}).run_id == "kafka__order-7"
    explicit = {"schema_version": 1, "dag_id": "etl", "idempotency_key": "order-7", "run_id": "manual__x"}
    assert parse(explicit).run_id == "manual__x"


def test_every_field_is_carried_into_the_request() -> None:
    options = RunOptions(default_task_queue="q")
    request = parse(
        {
            "schema_version": 1,
            "dag_id": "etl.v2-daily",
            "run_id": "manual__2025-01-01T00:00:00+00:00",
            "logical_date": "2025-06-01T12:00:00+02:00",
            "conf": {"factor": 3, "nested": {"list": [1, None, "x"]}},
        },
        options=options,
    )
    assert request.logical_date == datetime(2025, 6, 1, 10, tzinfo=UTC)
    assert request.conf == {"factor": 3, "nested": {"list": [1, None, "x"]}}
    assert request.options == options


def test_a_record_without_timestamp_gives_a_run_without_logical_date() -> None:
    assert parse({"schema_version": 1, "dag_id": "etl"}, timestamp_ms=-1).logical_date is None


@pytest.mark.parametrize(
    ("value", "reason"), [case[1:] for case in BAD_TRIGGERS], ids=[case[0] for case in BAD_TRIGGERS]
)
def test_bad_triggers_are_rejected_with_a_reason(value: bytes | None, reason: str) -> None:
    with pytest.raises(InvalidTrigger) as rejected:
        parse_trigger(value, **RECORD)
    assert reason in rejected.value.reason


def test_the_conf_limit_is_the_configured_one() -> None:
    message = {"schema_version": 1, "dag_id": "etl", "conf": {"x": "y" * 100}}
    assert parse(message).conf == message["conf"]
    with pytest.raises(InvalidTrigger, match="more than the limit of 50"):
        parse(message, max_conf_bytes=50)


def test_a_reason_never_repeats_a_large_input() -> None:
    with pytest.raises(InvalidTrigger) as rejected:
        parse({"schema_version": 1, "dag_id": "etl", "conf": {"x": "y" * 70_000}, "extra": "z" * 70_000})
    assert len(rejected.value.reason) <= 1000


def test_a_derived_run_id_that_breaks_airflow_rules_is_rejected() -> None:
    with pytest.raises(InvalidTrigger, match="give run_id or idempotency_key"):
        parse({"schema_version": 1, "dag_id": "etl"}, topic="t" * 240)


# Property tests: whatever arrives, the validator either returns a request or raises InvalidTrigger.


def json_trees(floats: st.SearchStrategy[float]) -> st.SearchStrategy[Any]:
    return st.recursive(
        st.none() | st.booleans() | st.integers() | floats | st.text(),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
        max_leaves=20,
    )


json_values = json_trees(st.floats())  # NaN and infinities included: Python's json writes them
plain_json_values = json_trees(st.floats(allow_nan=False, allow_infinity=False))
utc_offsets = st.integers(min_value=-1439, max_value=1439).map(lambda minutes: timezone(timedelta(minutes=minutes)))
field_values = {
    "schema_version": st.sampled_from([1, 2, 0, "1", 1.0, True, None]),
    "dag_id": st.text(max_size=260) | st.from_regex(r"[A-Za-z0-9_.-]{1,260}", fullmatch=True) | json_values,
    "run_id": st.text(max_size=260) | st.from_regex(r"[A-Za-z0-9_.~:+-]{1,260}", fullmatch=True) | json_values,
    "logical_date": st.datetimes().map(lambda d: d.isoformat())
    | st.datetimes(timezones=utc_offsets).map(lambda d: d.isoformat())
    | st.text(max_size=40)
    | json_values,
    "conf": st.dictionaries(st.text(max_size=10), json_values, max_size=5) | json_values,
    "idempotency_key": st.text(max_size=260) | json_values,
    "config": json_values,
}
trigger_like = st.fixed_dictionaries({}, optional={name: strategy for name, strategy in field_values.items()})


def accepted_or_rejected(value: bytes | None, **record: Any) -> DagRunRequest | None:
    try:
        request = parse_trigger(value, **{**RECORD, **record})
    except InvalidTrigger as rejected:
        assert rejected.reason
        return None
    assert 0 < len(request.run_id) <= 250 and ".." not in request.run_id
    assert 0 < len(request.dag_id) <= 250 and ".." not in request.dag_id
    assert request.logical_date is None or request.logical_date.tzinfo is not None
    json.dumps(request.conf, allow_nan=False)
    return request


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.none())
def test_any_bytes_are_accepted_or_rejected(value: bytes | None) -> None:
    accepted_or_rejected(value)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_json_value_is_accepted_or_rejected(value: Any) -> None:
    accepted_or_rejected(json.dumps(value).encode())


@settings(max_examples=500, deadline=None)
@given(
    trigger_like,
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=0, max_value=2**31),
    st.integers(min_value=0, max_value=2**62),
)
def test_any_trigger_shaped_object_is_accepted_or_rejected(
    message: dict[str, Any], timestamp_ms: int, partition: int, offset: int
) -> None:
    accepted_or_rejected(json.dumps(message).encode(), timestamp_ms=timestamp_ms, partition=partition, offset=offset)


@settings(max_examples=200, deadline=None)
@given(
    st.fixed_dictionaries(
        {
            "schema_version": st.just(1),
            "dag_id": st.from_regex(r"[A-Za-z0-9_-]{1,250}", fullmatch=True),
        },
        optional={
            "idempotency_key": st.from_regex(r"[A-Za-z0-9_~:+-]{1,243}", fullmatch=True),
            "logical_date": st.datetimes(
                min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=utc_offsets
            ).map(lambda d: d.isoformat()),
            "conf": st.dictionaries(st.text(max_size=10), plain_json_values, max_size=5),
        },
    )
)
def test_every_valid_trigger_is_accepted_and_agrees_with_the_json_schema(message: dict[str, Any]) -> None:
    jsonschema.validate(message, TRIGGER_SCHEMA)
    request = accepted_or_rejected(json.dumps(message).encode())
    assert request is not None and request.dag_id == message["dag_id"]


@pytest.mark.parametrize(
    "message",
    [
        {"schema_version": 1, "dag_id": "a/b"},
        {"schema_version": 1, "dag_id": "d" * 251},
        {"schema_version": 2, "dag_id": "etl"},
        {"schema_version": 1, "dag_id": "etl", "config": {}},
        {"schema_version": 1, "dag_id": "etl", "conf": []},
        {"dag_id": "etl"},
    ],
)
def test_the_json_schema_rejects_what_the_bridge_rejects(message: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(message, TRIGGER_SCHEMA)
    with pytest.raises(InvalidTrigger):
        parse(message)


def test_json_schema_files_are_current() -> None:
    on_disk = {path.name: path.read_text() for path in Path(SCHEMA_DIR).glob("*.json")}
    assert on_disk == json_schemas(), "stale schemas/json: run `python -m schemas.json_schema`"


# Events

START = datetime(2025, 1, 1, tzinfo=UTC)


def try_request(task_id: str = "load", map_index: int = -1, try_number: int = 2) -> TaskTryRequest:
    return TaskTryRequest(
        dag_run=DagRunContext(
            dag_id="etl",
            run_id="kafka__k",
            run_type="manual",
            logical_date=START,
            data_interval_start=START,
            data_interval_end=START,
            run_after=START,
            start_date=START,
        ),
        task_id=task_id,
        map_index=map_index,
        try_number=try_number,
        max_tries=3,
    )


def test_task_event_of_a_failed_try() -> None:
    result = TaskTryResult(
        task_id="load",
        map_index=3,
        try_number=2,
        state=TaskState.UP_FOR_RETRY,
        start_date=START,
        end_date=START + timedelta(seconds=1.5),
        error=TaskError(type="RuntimeError", message="boom", traceback='  File "etl.py", line 3\nRuntimeError: boom'),
        xcoms=[XComEntry(task_id="load", map_index=3, key="b", value=1), XComEntry(task_id="load", key="a")],
        log="s3://logs/dag_id=etl/run_id=kafka__k/task_id=load/map_index=3/attempt=2.log",
    )
    event = TaskEvent.of_try("dagrun:etl:kafka__k", try_request(map_index=3), result)

    assert event.event_id == "dagrun:etl:kafka__k:load:3:2"
    assert (event.dag_id, event.run_id, event.state, event.duration_seconds) == ("etl", "kafka__k", "up_for_retry", 1.5)
    assert event.error is not None and (event.error.type, event.error.message) == ("RuntimeError", "boom")
    assert event.error.traceback == '  File "etl.py", line 3\nRuntimeError: boom'
    assert event.log == result.log
    assert event.xcom_keys == ["a", "b"]
    jsonschema.validate(
        json.loads(event.model_dump_json()), json.loads((SCHEMA_DIR / "task-event.schema.json").read_text())
    )


def test_run_event_lists_every_task_instance() -> None:
    result = DagRunResult(
        dag_id="etl",
        run_id="kafka__k",
        state="failed",
        start_date=START,
        end_date=START + timedelta(minutes=1),
        task_instances=[
            TaskInstanceResult(task_id="a", state="failed", try_number=2),
            TaskInstanceResult(task_id="b", state="upstream_failed", try_number=0),
        ],
    )
    request = DagRunRequest(dag_id="etl", run_id="kafka__k", logical_date=START)
    event = RunEvent.of_result("dagrun:etl:kafka__k", result, request)

    assert event.event_id == "dagrun:etl:kafka__k:finished"
    assert (event.run_type, event.logical_date) == ("manual", START)
    assert [(ti.task_id, ti.state, ti.try_number) for ti in event.task_instances] == [
        ("a", "failed", 2),
        ("b", "upstream_failed", 0),
    ]
    jsonschema.validate(
        json.loads(event.model_dump_json()), json.loads((SCHEMA_DIR / "run-event.schema.json").read_text())
    )


# Kafka options


def test_kafka_security_settings_reach_every_client() -> None:
    assert kafka_options(Settings(kafka_bootstrap="k:9092")) == {
        "bootstrap_servers": "k:9092",
        "security_protocol": "PLAINTEXT",
    }
    sasl = kafka_options(
        Settings(
            kafka_bootstrap="k:9092",
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism="SCRAM-SHA-512",
            kafka_sasl_username="u",
            kafka_sasl_password="p",
        )
    )
    assert (sasl["sasl_mechanism"], sasl["sasl_plain_username"], sasl["sasl_plain_password"]) == (
        "SCRAM-SHA-512",
        "u",
        "p",
    )
    assert sasl["ssl_context"] is not None
    plain = kafka_options(
        Settings(
            kafka_bootstrap="k:9092",
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_username="u",
            kafka_sasl_password="p",
        )
    )
    assert plain["sasl_mechanism"] == "PLAIN" and "ssl_context" not in plain
    with pytest.raises(ValueError, match="DAGBRIDGE_KAFKA_BOOTSTRAP is empty"):
        kafka_options(Settings(kafka_bootstrap=" "))


def test_the_bridge_does_not_import_airflow() -> None:
    # A fresh interpreter: this one has Airflow loaded by other tests already.
    check = (
        "import sys, bridge.consumer, dagbridge.terminal;"
        "print(sorted(m for m in sys.modules if m.startswith('airflow')))"
    )
    loaded = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
