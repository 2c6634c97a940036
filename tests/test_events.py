"""Task and run events as a real worker publishes them to a real Tansu broker."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import jsonschema
from aiokafka.structs import ConsumerRecord
from prometheus_client import REGISTRY
from temporalio.client import Client

from infra.temporal import start_dag_run
from schemas.json_schema import SCHEMA_DIR
from schemas.messages import RunEvent, TaskEvent
from schemas.runs import DagRunRequest, DagRunResult, RunOptions
from schemas.settings import Settings
from tests.bridge_fixtures import BRIDGE_DAGS, eventually, read_records, running_worker, unique
from tests.processes import WorkerProcess
from tests.servers import TansuBroker, free_port

TASK_EVENT_SCHEMA = json.loads((SCHEMA_DIR / "task-event.schema.json").read_text())
RUN_EVENT_SCHEMA = json.loads((SCHEMA_DIR / "run-event.schema.json").read_text())


def request(dag_id: str, queue: str, conf: dict | None = None) -> DagRunRequest:
    return DagRunRequest(
        dag_id=dag_id,
        run_id=unique("events"),
        conf=conf or {},
        options=RunOptions(default_task_queue=queue, task_heartbeat_timeout_seconds=5),
    )


def of_run(records: list[ConsumerRecord[bytes, bytes]], run_id: str) -> list[ConsumerRecord[bytes, bytes]]:
    return [record for record in records if json.loads(record.value)["run_id"] == run_id]


async def test_each_try_has_one_event_in_order_and_the_run_event_lists_every_task(
    kafka_worker: Settings, temporal_client: Client
) -> None:
    run = request("bridge_retries", kafka_worker.task_queue)
    handle = await start_dag_run(temporal_client, run, kafka_worker.task_queue)
    result: DagRunResult = await handle.result()
    assert result.state == "failed"

    runs = of_run(
        await read_records(
            kafka_worker.kafka_bootstrap, kafka_worker.run_events_topic, until=lambda r: bool(of_run(r, run.run_id))
        ),
        run.run_id,
    )
    tasks = of_run(
        await read_records(
            kafka_worker.kafka_bootstrap,
            kafka_worker.task_events_topic,
            until=lambda r: len(of_run(r, run.run_id)) >= 4,
        ),
        run.run_id,
    )

    key = f"bridge_retries:{run.run_id}".encode()
    assert {(record.key, record.partition) for record in tasks} == {(key, runs[0].partition)}, "one key, one partition"
    for record in tasks:
        jsonschema.validate(json.loads(record.value), TASK_EVENT_SCHEMA)
    events = [TaskEvent.model_validate_json(record.value) for record in tasks]
    assert [(e.task_id, e.try_number, e.state) for e in events] == [
        ("flaky", 1, "up_for_retry"),
        ("flaky", 2, "success"),
        ("always_fails", 1, "up_for_retry"),
        ("always_fails", 2, "failed"),
    ]
    workflow_id = f"dagrun:bridge_retries:{run.run_id}"
    assert [e.event_id for e in events] == [
        f"{workflow_id}:flaky:-1:1",
        f"{workflow_id}:flaky:-1:2",
        f"{workflow_id}:always_fails:-1:1",
        f"{workflow_id}:always_fails:-1:2",
    ]
    assert events[0].error is not None and events[0].error.message == "try 1 fails"
    assert (events[1].error, events[1].xcom_keys) == (None, ["return_value"])
    assert all(e.end_date >= e.start_date and e.duration_seconds >= 0 for e in events)

    assert len(runs) == 1
    jsonschema.validate(json.loads(runs[0].value), RUN_EVENT_SCHEMA)
    finished = RunEvent.model_validate_json(runs[0].value)
    assert (finished.event_id, finished.state, runs[0].key) == (f"{workflow_id}:finished", "failed", key)
    assert {ti.task_id: (ti.state, ti.try_number) for ti in finished.task_instances} == {
        "flaky": ("success", 2),
        "always_fails": ("failed", 2),
        "never_runs": ("upstream_failed", 0),
    }
    assert runs[0].timestamp >= tasks[-1].timestamp, "the run event comes after every task event"


async def test_a_worker_started_without_kafka_publishes_once_kafka_is_there(
    kafka_worker_settings: Settings, temporal_client: Client, server_logs: Path, tmp_path: Path
) -> None:
    broker = TansuBroker(server_logs, port=free_port())
    settings = kafka_worker_settings.model_copy(
        update={"kafka_bootstrap": broker.bootstrap, "task_queue": unique("events-late-kafka")}
    )
    marker = tmp_path / "ran"
    run = request("bridge_counted", settings.task_queue, {"marker": str(marker)})
    async with running_worker(settings):
        handle = await start_dag_run(temporal_client, run, settings.task_queue)

        async def task_ran() -> None:
            assert marker.exists()

        await eventually(task_ran, timeout=30)

        async def event_held() -> None:
            assert REGISTRY.get_sample_value("dagbridge_events_held_back", {"event": "task"}) == 1

        # The try waits for its event, and the worker shows it does.
        await eventually(event_held, timeout=60)
        await asyncio.to_thread(broker.start)
        try:
            result: DagRunResult = await handle.result()
            assert REGISTRY.get_sample_value("dagbridge_events_held_back", {"event": "task"}) == 0
            tasks = await read_records(broker.bootstrap, settings.task_events_topic, until=lambda r: len(r) >= 2)
            await read_records(broker.bootstrap, settings.run_events_topic, until=lambda r: len(r) >= 1)
        finally:
            broker.stop()
    assert result.state == "success"
    assert [json.loads(record.value)["task_id"] for record in tasks] == ["count", "after"]
    assert marker.read_text() == "ran\n", "publishing was retried, the task was not"


async def test_a_worker_killed_while_publishing_leaves_the_event_to_the_next_attempt_without_rerunning_the_task(
    kafka_worker_settings: Settings, temporal_client: Client, server_logs: Path, tmp_path: Path
) -> None:
    broker = TansuBroker(server_logs, port=free_port())
    settings = kafka_worker_settings.model_copy(
        update={
            "kafka_bootstrap": broker.bootstrap,
            "task_queue": unique("events-killed"),
            "dags_folder": BRIDGE_DAGS,
            "task_processes": 1,
        }
    )
    marker = tmp_path / "ran"
    run = request("bridge_counted", settings.task_queue, {"marker": str(marker)})
    doomed = WorkerProcess(settings, server_logs / "worker-killed-while-publishing.log")
    handle = await start_dag_run(temporal_client, run, settings.task_queue)

    async def result_heartbeated() -> None:
        # The first task ran; its result reaches Temporal with the first throttled
        # heartbeat after it (at most 0.8 x the 5 s heartbeat timeout later).
        assert marker.exists()
        description = await handle.describe()
        pending = description.raw_description.pending_activities
        assert pending and pending[0].heartbeat_details.payloads, "no result heartbeated yet"

    try:
        await eventually(result_heartbeated, timeout=60, interval=0.5)
    finally:
        doomed.kill()

    await asyncio.to_thread(broker.start)
    try:
        async with running_worker(settings):
            result: DagRunResult = await handle.result()
        tasks = await read_records(broker.bootstrap, settings.task_events_topic, until=lambda r: len(r) >= 2)
    finally:
        broker.stop()
    assert result.state == "success"
    assert [json.loads(record.value)["task_id"] for record in tasks] == ["count", "after"]
    assert marker.read_text() == "ran\n", "the retried activity ran the task again"
