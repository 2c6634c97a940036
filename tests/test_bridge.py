"""The bridge against a real Tansu broker, a real Temporal dev server and a real worker."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

from temporalio.client import Client, WorkflowExecutionStatus

from bridge.consumer import Outcome
from bridge.dlq import ERROR_HEADER, SOURCE_OFFSET_HEADER, SOURCE_PARTITION_HEADER, SOURCE_TOPIC_HEADER
from schemas.messages import RunEvent
from schemas.settings import Settings
from tests.bad_triggers import BAD_TRIGGERS
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


def trigger(dag_id: str = "bridge_noop", **fields: object) -> bytes:
    return json.dumps({"schema_version": 1, "dag_id": dag_id, **fields}).encode()


async def run_events(settings: Settings, run_ids: set[str]) -> dict[str, RunEvent]:
    """The run event of each of ``run_ids``, waiting until every one has arrived."""

    def events(records) -> dict[str, RunEvent]:
        parsed = (RunEvent.model_validate_json(record.value) for record in records)
        return {event.run_id: event for event in parsed if event.run_id in run_ids}

    records = await read_records(
        settings.kafka_bootstrap, settings.run_events_topic, until=lambda records: events(records).keys() == run_ids
    )
    return events(records)


async def assert_all_committed(settings: Settings) -> None:
    committed = await committed_offsets(settings.kafka_bootstrap, settings.consumer_group, settings.trigger_topic)
    assert committed == await end_offsets(settings.kafka_bootstrap, settings.trigger_topic)


async def test_each_trigger_starts_exactly_one_run_even_when_delivered_again(
    bridge_settings: Settings, temporal_client: Client
) -> None:
    batch = unique("batch")
    distinct = [trigger(idempotency_key=f"{batch}-{n}", conf={"n": n}) for n in range(5)]
    same_twice = trigger(run_id=f"{batch}-explicit")
    same_key_twice = [trigger(idempotency_key=f"{batch}-key", conf={"copy": n}) for n in (1, 2)]
    await produce(
        bridge_settings.kafka_bootstrap,
        bridge_settings.trigger_topic,
        [*distinct, same_twice, same_twice, *same_key_twice],
    )
    expected_runs = {f"kafka__{batch}-{n}" for n in range(5)} | {f"{batch}-explicit", f"kafka__{batch}-key"}

    async with running_bridge(bridge_settings) as bridge:
        events = await run_events(bridge_settings, expected_runs)
        await eventually(lambda: assert_all_committed(bridge_settings), timeout=10)
    assert bridge.outcomes == {Outcome.STARTED: 7, Outcome.DUPLICATE: 2}
    assert {event.state for event in events.values()} == {"success"}

    ids = await workflow_ids(temporal_client, "dagrun:bridge_noop:")
    assert sorted(i for i in ids if batch in i) == sorted(f"dagrun:bridge_noop:{run}" for run in expected_runs)

    # Redelivery of every record, as after a bridge that died before committing anything:
    # a group without committed offsets reads the topic from its start.
    again_settings = bridge_settings.model_copy(update={"consumer_group": f"{bridge_settings.consumer_group}-again"})
    async with running_bridge(again_settings) as again:
        await eventually(lambda: assert_all_committed(again_settings), timeout=30)
    assert again.outcomes == {Outcome.DUPLICATE: 9}
    assert sorted(i for i in await workflow_ids(temporal_client, "dagrun:bridge_noop:") if batch in i) == sorted(
        f"dagrun:bridge_noop:{run}" for run in expected_runs
    )


async def test_bad_triggers_go_to_the_dlq_with_a_reason_and_the_bridge_keeps_serving(
    bridge_settings: Settings, temporal_client: Client
) -> None:
    names = [name for name, _, _ in BAD_TRIGGERS]
    values = [value for _, value, _ in BAD_TRIGGERS]
    headers = [[("case", name.encode()), ("trace", b"\x00\xff")] for name in names]
    run_id = unique("after-bad")
    # A key, because a record with neither key nor value (a bare tombstone) cannot be produced.
    keys = [name.encode() for name in names]
    sent = await produce(
        bridge_settings.kafka_bootstrap, bridge_settings.trigger_topic, values, keys=keys, headers=headers, partition=0
    )
    await produce(bridge_settings.kafka_bootstrap, bridge_settings.trigger_topic, [trigger(run_id=run_id)], partition=0)

    async with running_bridge(bridge_settings) as bridge:
        dead = await read_records(
            bridge_settings.kafka_bootstrap,
            bridge_settings.dlq_topic,
            until=lambda records: len(records) >= len(values),
        )
        await run_events(bridge_settings, {run_id})
        await eventually(lambda: assert_all_committed(bridge_settings), timeout=10)
    assert bridge.outcomes == {Outcome.INVALID: len(values), Outcome.STARTED: 1}

    assert len(dead) == len(values)
    by_case = {dict(record.headers)["case"].decode(): record for record in dead}
    for (name, value, reason), metadata in zip(BAD_TRIGGERS, sent, strict=True):
        record = by_case[name]
        assert (record.key, record.value) == (name.encode(), value), name
        assert list(record.headers[:2]) == [("case", name.encode()), ("trace", b"\x00\xff")], "original headers first"
        added = dict(record.headers[2:])
        assert reason in added[ERROR_HEADER].decode(), (name, added[ERROR_HEADER])
        assert added[SOURCE_TOPIC_HEADER].decode() == bridge_settings.trigger_topic
        assert (int(added[SOURCE_PARTITION_HEADER]), int(added[SOURCE_OFFSET_HEADER])) == (
            metadata.partition,
            metadata.offset,
        )
    assert await workflow_ids(temporal_client, "dagrun:bridge_noop:" + run_id) == [f"dagrun:bridge_noop:{run_id}"]


async def test_unknown_dag_fails_its_run_and_its_run_event_says_why(
    bridge_settings: Settings, temporal_client: Client
) -> None:
    run_id = unique("unknown")
    await produce(
        bridge_settings.kafka_bootstrap, bridge_settings.trigger_topic, [trigger("no_such_dag", run_id=run_id)]
    )

    async with running_bridge(bridge_settings):
        event = (await run_events(bridge_settings, {run_id}))[run_id]

    assert (event.dag_id, event.state, event.task_instances) == ("no_such_dag", "failed", [])
    assert event.error is not None and "DAG 'no_such_dag' is not in the dags folder" in event.error
    description = await temporal_client.get_workflow_handle(f"dagrun:no_such_dag:{run_id}").describe()
    assert description.status == WorkflowExecutionStatus.FAILED


def dagbridge(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    variables = ("kafka_bootstrap", "trigger_topic", "task_events_topic", "run_events_topic")
    return subprocess.run(
        [sys.executable, "-m", "dagbridge.cli", *args],
        env={**os.environ, **{f"DAGBRIDGE_{name.upper()}": getattr(settings, name) for name in variables}},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,  # callers assert the exit code they expect
    )


async def test_trigger_and_events_commands(bridge_settings: Settings) -> None:
    key = unique("cli")
    rejected = await asyncio.to_thread(dagbridge, bridge_settings, "trigger", "../etc")
    assert rejected.returncode == 2 and "dag_id: String should match pattern" in rejected.stderr

    sent = await asyncio.to_thread(
        dagbridge, bridge_settings, "trigger", "bridge_noop", "--idempotency-key", key, "--conf", '{"x": 1}'
    )
    assert sent.returncode == 0, sent.stderr
    assert f"run kafka__{key} (workflow dagrun:bridge_noop:kafka__{key})" in sent.stdout

    async with running_bridge(bridge_settings):
        await run_events(bridge_settings, {f"kafka__{key}"})
    printed = await asyncio.to_thread(dagbridge, bridge_settings, "events", "--run-id", f"kafka__{key}", "--json")
    assert printed.returncode == 0, printed.stderr
    [line] = printed.stdout.splitlines()
    assert RunEvent.model_validate_json(line).event_id == f"dagrun:bridge_noop:kafka__{key}:finished"
