"""Bad input: each ends in a clear error where its sender looks, nothing is lost, and nothing wedges."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord
from temporalio.client import WorkflowFailureError

from bridge.consumer import Outcome
from bridge.dlq import ERROR_HEADER, SOURCE_OFFSET_HEADER, VALUE_OMITTED_HEADER
from schemas.ids import dag_run_workflow_id, parse_dag_run_workflow_id, task_log_path
from schemas.messages import RunEvent
from schemas.runs import MAX_TRY_XCOM_BYTES, RunOptions
from schemas.settings import Settings
from tests.bridge_fixtures import (
    committed_offsets,
    end_offsets,
    eventually,
    produce,
    read_records,
    running_bridge,
    running_worker,
    unique,
)
from tests.dags.bad_outputs import LOUD_BYTES
from tests.harness import DagRunner
from tests.held_runs import dagbridge
from tests.history import activity_attempts
from tests.servers import TansuBroker


async def test_an_xcom_over_the_payload_limit_fails_its_try_once_and_a_stdout_flood_stays_on_disk(
    run_dag: DagRunner, task_logs: Path
) -> None:
    handle = await run_dag.start("bad_outputs")
    result = await handle.result()
    states = {ti.task_id: (ti.state, ti.try_number) for ti in result.task_instances}

    # Before the bound, the try's activity result was refused by Temporal on every attempt, for ever.
    assert states["huge_xcom"] == ("failed", 1)
    assert states["after_huge_xcom"] == ("upstream_failed", 0)
    assert (await activity_attempts(handle))["huge_xcom:-1:1"] == 1, "the activity itself is not retried"
    huge_log = (task_logs / task_log_path("bad_outputs", result.run_id, "huge_xcom", -1, 1)).read_text()
    assert "XComTooLarge" in huge_log
    assert f"more than the {MAX_TRY_XCOM_BYTES} a try may push" in huge_log

    # The flood went to the try's file through its file descriptor: nothing of it was held in memory.
    assert states["loud"] == ("success", 1)
    loud = next(ti for ti in result.task_instances if ti.task_id == "loud").xcom["return_value"]
    assert isinstance(loud, dict)
    grown_kib = loud["after_kib"] - loud["before_kib"]
    assert grown_kib < 32 * 1024, f"peak memory grew by {grown_kib} KiB while writing {LOUD_BYTES >> 20} MiB"
    loud_log = task_logs / task_log_path("bad_outputs", result.run_id, "loud", -1, 1)
    assert loud_log.stat().st_size > LOUD_BYTES
    with loud_log.open("rb") as log:
        log.seek(-64 * 1024, 2)
        assert b"loud: end" in log.read()
    loud_log.unlink()  # 256 MiB of the session's temporary folder


GOOD_DAG = """
import datetime
from airflow.sdk import dag, task

@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1))
def imports_fine():
    @task
    def only() -> int:
        return 1

    only()

imports_fine()
"""

# A DAG file stuck at import (as on a network call without a timeout) until the test releases it.
HANGING_DAG = """
import time
from pathlib import Path

while not Path({release!r}).exists():
    time.sleep(0.05)
"""

RAISING_DAG = "from airflow.sdk import DAG\nraise RuntimeError('the config server said no')\n"


async def test_dag_files_that_hang_or_raise_on_import_fail_their_runs_and_wedge_nothing(
    worker_settings: Settings, run_dag: DagRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dags, release = tmp_path / "dags", tmp_path / "release-the-import"
    dags.mkdir()
    (dags / "imports_fine.py").write_text(GOOD_DAG)
    (dags / "hangs_on_import.py").write_text(HANGING_DAG.format(release=str(release)))
    (dags / "raises_on_import.py").write_text(RAISING_DAG)
    queue = unique("bad-dags")
    # Airflow's bound on one file's import; the worker parses off its main thread, where Airflow's own
    # SIGALRM-based bound cannot apply.
    monkeypatch.setenv("AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT", "3")
    settings = worker_settings.model_copy(update={"dags_folder": dags, "task_queue": queue})
    options = RunOptions(default_task_queue=queue, task_heartbeat_timeout_seconds=5)
    try:
        async with running_worker(settings):
            fine = await (await run_dag.start("imports_fine", options=options, task_queue=queue)).result()
            assert (fine.state, [ti.state for ti in fine.task_instances]) == ("success", ["success"])

            for dag_id, reason in (
                ("hangs_on_import", "DagBag import timeout for"),
                ("raises_on_import", "RuntimeError: the config server said no"),
            ):
                with pytest.raises(WorkflowFailureError) as failure:
                    await (await run_dag.start(dag_id, options=options, task_queue=queue)).result()
                message = getattr(failure.value.cause, "message", "")
                assert f"DAG {dag_id!r} is not in the dags folder" in message, message
                assert f"{dag_id}.py: {reason}" in message, message

            # Still serving: the loader was not left waiting on the stuck import.
            again = await (await run_dag.start("imports_fine", options=options, task_queue=queue)).result()
            assert again.state == "success"
    finally:
        release.touch()  # lets the abandoned import thread end


async def run_events(settings: Settings, run_ids: set[str]) -> dict[str, RunEvent]:
    def events(records: list[ConsumerRecord[bytes, bytes]]) -> dict[str, RunEvent]:
        parsed = (RunEvent.model_validate_json(record.value) for record in records)
        return {event.run_id: event for event in parsed if event.run_id in run_ids}

    records = await read_records(
        settings.kafka_bootstrap, settings.run_events_topic, until=lambda records: events(records).keys() == run_ids
    )
    return events(records)


async def assert_all_committed(settings: Settings) -> None:
    committed = await committed_offsets(settings.kafka_bootstrap, settings.consumer_group, settings.trigger_topic)
    assert committed == await end_offsets(settings.kafka_bootstrap, settings.trigger_topic)


async def commit_offset(bootstrap: str, group: str, tp: TopicPartition, offset: int) -> None:
    """Move ``group``'s offset of ``tp`` to ``offset``, as ``kafka-consumer-groups --reset-offsets`` does,
    by joining the group (Tansu refuses commits from outside it)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.subscribe([tp.topic])
        while tp not in consumer.assignment():
            await consumer.getmany(timeout_ms=200)
        await consumer.commit({tp: offset})
    finally:
        await consumer.stop()


def trigger_value(dag_id: str = "bridge_noop", **fields: object) -> bytes:
    return json.dumps({"schema_version": 1, "dag_id": dag_id, **fields}).encode()


async def test_odd_records_reach_a_run_or_the_dlq_and_the_bridge_keeps_serving(bridge_settings: Settings) -> None:
    """A key and header values that are not UTF-8 on a good trigger; records far over the conf limit and
    over the producer's default 1 MiB request size (what a broker's default message.max.bytes also is)."""
    binary_key_run, after_run = unique("binary-key"), unique("after-large")
    large = trigger_value(run_id=unique("large"), conf={"blob": "x" * (1536 * 1024)})
    larger = trigger_value(run_id=unique("larger"), conf={"blob": "x" * (3 * 1024 * 1024)})
    producer = AIOKafkaProducer(bootstrap_servers=bridge_settings.kafka_bootstrap, acks="all", max_request_size=8 << 20)
    await producer.start()
    try:
        sent = [
            await producer.send_and_wait(
                bridge_settings.trigger_topic,
                trigger_value(run_id=binary_key_run),
                key=b"\xff\xfe\x00",
                headers=[("trace", b"\xff\x00")],
                partition=0,
            ),
            await producer.send_and_wait(bridge_settings.trigger_topic, large, partition=0),
            await producer.send_and_wait(bridge_settings.trigger_topic, larger, partition=0),
            await producer.send_and_wait(bridge_settings.trigger_topic, trigger_value(run_id=after_run), partition=0),
        ]
    finally:
        await producer.stop()

    async with running_bridge(bridge_settings) as bridge:
        events = await run_events(bridge_settings, {binary_key_run, after_run})
        dead = await read_records(
            bridge_settings.kafka_bootstrap, bridge_settings.dlq_topic, until=lambda records: len(records) >= 2
        )
        await eventually(lambda: assert_all_committed(bridge_settings), timeout=30)
    assert {event.state for event in events.values()} == {"success"}
    assert bridge.outcomes == {Outcome.STARTED: 2, Outcome.INVALID: 2}
    by_offset = {int(dict(record.headers)[SOURCE_OFFSET_HEADER]): record for record in dead}
    assert by_offset.keys() == {sent[1].offset, sent[2].offset}
    for offset in (sent[1].offset, sent[2].offset):
        assert "more than the limit of 65536" in dict(by_offset[offset].headers)[ERROR_HEADER].decode()
    assert by_offset[sent[1].offset].value == large, "the original value, untouched"
    assert VALUE_OMITTED_HEADER not in dict(by_offset[sent[1].offset].headers)
    # Over the DLQ producer's request limit: the value stays at its source coordinates, the DLQ says so.
    assert by_offset[sent[2].offset].value == b""
    assert int(dict(by_offset[sent[2].offset].headers)[VALUE_OMITTED_HEADER]) == len(larger)


async def test_a_run_id_with_colons_round_trips_and_its_log_stays_under_the_logs_base(
    run_dag: DagRunner, worker_settings: Settings, task_logs: Path
) -> None:
    run_id = unique("odd:run:id+~.") + ":"
    result = await run_dag("one_task", run_id=run_id)

    assert (result.state, result.run_id) == ("success", run_id)
    workflow_id = dag_run_workflow_id("one_task", run_id)
    assert parse_dag_run_workflow_id(workflow_id) == ("one_task", run_id)
    log = task_logs / task_log_path("one_task", run_id, "only", -1, 1)
    assert log.resolve().is_relative_to(task_logs.resolve()) and log.is_file()
    shown = dagbridge(worker_settings, "logs", "one_task", run_id, "only")
    assert shown.returncode == 0, shown.stderr
    assert log.read_text() in shown.stdout


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["one_task", "--run-id", "a/b"], "run_id: String should match"),
        (["one_task", "--run-id", "café"], "run_id: String should match"),
        (["one_task", "--run-id", "a..b"], "run_id: Value error, must not contain '..'"),
        (["../one_task"], "dag_id: String should match"),
        (["one_task", "--conf", '{"x": NaN}'], "conf: Value error, is not plain JSON"),
        (["one_task", "--conf", '{"x": ' + "[" * 70 + "]" * 70 + "}"], "conf: Value error, is nested 71 levels deep"),
    ],
)
def test_dagbridge_run_refuses_what_the_bridge_refuses_in_one_line(
    worker_settings: Settings, args: list[str], reason: str
) -> None:
    refused = dagbridge(worker_settings, "run", *args)

    assert refused.returncode == 2
    assert refused.stderr.startswith("dagbridge: invalid run: ") and reason in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr


class _RawHeaderKey(str):
    """A header key whose bytes are not UTF-8, as only a hand-made producer writes one (Kafka's protocol
    says header keys are strings): aiokafka's pure-Python record builder takes the key's ``encode()``."""

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return b"\xff\xfe"


async def produce_with_raw_header_key(bootstrap: str, topic: str, value: bytes, partition: int) -> int:
    """Offset of a record with a header key that is not UTF-8 (written with aiokafka's Python builder)."""
    from aiokafka.producer import message_accumulator
    from aiokafka.producer import producer as producer_module
    from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        with pytest.MonkeyPatch.context() as patch:
            for module in (message_accumulator, producer_module):
                patch.setattr(module, "DefaultRecordBatchBuilder", _DefaultRecordBatchBuilderPy)
            sent = await producer.send_and_wait(topic, value, headers=[(_RawHeaderKey("x"), b"y")], partition=partition)
    finally:
        await producer.stop()
    return sent.offset


async def test_a_record_the_kafka_client_cannot_decode_holds_only_its_partition(
    bridge_settings: Settings, tansu: TansuBroker, caplog: pytest.LogCaptureFixture
) -> None:
    topic = bridge_settings.trigger_topic
    after, other = unique("after"), unique("other")
    bad_offset = await produce_with_raw_header_key(tansu.bootstrap, topic, trigger_value(run_id=unique("bad")), 0)
    await produce(tansu.bootstrap, topic, [trigger_value(run_id=after)], partition=0)
    await produce(tansu.bootstrap, topic, [trigger_value(run_id=other)], partition=1)

    async with running_bridge(bridge_settings) as bridge:
        await run_events(bridge_settings, {other})
        await eventually(
            lambda: logged(caplog, f"{topic}[0]: a record at or after offset {bad_offset} cannot"), timeout=30
        )
    assert bridge.outcomes == {Outcome.STARTED: 1}
    assert (await committed_offsets(tansu.bootstrap, bridge_settings.consumer_group, topic))[0] == bad_offset

    # What the error line asks the operator to do: move the group's offset past the record.
    await commit_offset(tansu.bootstrap, bridge_settings.consumer_group, TopicPartition(topic, 0), bad_offset + 1)
    async with running_bridge(bridge_settings) as bridge:
        await run_events(bridge_settings, {after})
        await eventually(lambda: assert_all_committed(bridge_settings), timeout=30)
    assert bridge.outcomes == {Outcome.STARTED: 1}


async def logged(caplog: pytest.LogCaptureFixture, text: str) -> None:
    assert any(text in record.getMessage() for record in caplog.records), f"no log line with {text!r} yet"
