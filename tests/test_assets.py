"""Asset events out of producing tasks, and DAGs scheduled on assets, with real Temporal and Tansu."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from dagbridge.schedule_commands import set_paused
from infra.temporal import start_dag_run
from schemas.assets import AssetScheduleStatus
from schemas.ids import asset_schedule_workflow_id, dag_run_workflow_id
from schemas.json_schema import SCHEMA_DIR
from schemas.messages import AssetEventMessage
from schemas.names import ASSET_SCHEDULE_STATE_QUERY
from schemas.runs import DagRunRequest, DagRunResult, RunOptions
from schemas.settings import Settings
from tests.bridge_fixtures import eventually, read_records, running_worker, unique, workflow_ids
from tests.servers import TansuBroker

ASSET_DAGS = Path(__file__).parent / "asset_dags"
ASSET_EVENT_SCHEMA = json.loads((SCHEMA_DIR / "asset-event.schema.json").read_text())
WAIT = 60


@pytest.fixture(scope="session")
def asset_gate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("asset-gate") / "open"


@pytest.fixture(scope="session")
async def asset_worker(
    kafka_worker_settings: Settings, tansu: TansuBroker, asset_gate: Path, temporal_client: Client
) -> AsyncIterator[Settings]:
    """A worker on its own queue and dags folder, publishing asset events to their own topic."""
    settings = kafka_worker_settings.model_copy(
        update={
            "task_queue": "dagbridge-asset-tests",
            "dags_folder": ASSET_DAGS,
            "asset_events_topic": unique("asset-events"),
        }
    )
    tansu.create_topics([settings.asset_events_topic], partitions=2)
    # The task processes are spawned by the worker and inherit this: the gated consumer waits on it.
    os.environ["TEST_ASSET_GATE"] = str(asset_gate)
    async with running_worker(settings):
        yield settings


async def produce(client: Client, settings: Settings, dag_id: str) -> DagRunResult:
    request = DagRunRequest(
        dag_id=dag_id,
        run_id=unique("produce"),
        options=RunOptions(default_task_queue=settings.task_queue, task_heartbeat_timeout_seconds=5),
    )
    result: DagRunResult = await (await start_dag_run(client, request, settings.task_queue)).result()
    assert result.state == "success"
    return result


async def schedule_status(client: Client, dag_id: str) -> AssetScheduleStatus:
    handle = client.get_workflow_handle(asset_schedule_workflow_id(dag_id))
    return await handle.query(ASSET_SCHEDULE_STATE_QUERY, result_type=AssetScheduleStatus)


async def started_runs(client: Client, dag_id: str, count: int) -> list[str]:
    async def check() -> list[str]:
        status = await schedule_status(client, dag_id)
        assert len(status.started_run_ids) >= count, status
        return status.started_run_ids

    return await eventually(check, timeout=WAIT)


async def consumed(client: Client, dag_id: str, run_id: str) -> dict[str, Any]:
    """What the consumer's task saw, once its run succeeded."""
    result: DagRunResult = await client.get_workflow_handle(
        dag_run_workflow_id(dag_id, run_id), result_type=DagRunResult
    ).result()
    assert result.state == "success", result
    return result.task_instances[0].xcom["return_value"]


def produced(source: DagRunResult, **extra: Any) -> dict[str, Any]:
    return {
        "extra": {"produced_by": source.run_id, "rows": 3, **extra},
        "source_dag_id": source.dag_id,
        "source_run_id": source.run_id,
        "source_task_id": "update",
        "aliases": [],
    }


async def test_a_consumer_of_a_and_b_runs_once_both_were_updated_and_sees_both_events(
    asset_worker: Settings, temporal_client: Client
) -> None:
    first = await produce(temporal_client, asset_worker, "produce_and_a")

    async def a_is_queued() -> None:
        status = await schedule_status(temporal_client, "consume_and")
        assert [row.asset.uri for row in status.queued] == ["and_a"], status

    await eventually(a_is_queued, timeout=WAIT)
    second = await produce(temporal_client, asset_worker, "produce_and_b")

    [run_id] = await started_runs(temporal_client, "consume_and", 1)
    assert run_id.startswith("asset_triggered__")
    seen = await consumed(temporal_client, "consume_and", run_id)
    assert seen == {
        "triggering": {"and_a": [produced(first)], "and_b": [produced(second)]},
        "inlet_and_a": [produced(first)["extra"]],
    }
    assert await workflow_ids(temporal_client, dag_run_workflow_id("consume_and", "")) == [
        dag_run_workflow_id("consume_and", run_id)
    ], "one run, started only once both assets were updated"


async def test_each_asset_event_is_one_record_keyed_by_asset_with_a_stable_event_id(
    asset_worker: Settings, temporal_client: Client
) -> None:
    source = await produce(temporal_client, asset_worker, "produce_unconsumed")
    event_id = f"{dag_run_workflow_id('produce_unconsumed', source.run_id)}:update:-1:1:s3://bucket/unconsumed"
    records = await read_records(
        asset_worker.kafka_bootstrap,
        asset_worker.asset_events_topic,
        until=lambda found: any(json.loads(r.value)["event_id"] == event_id for r in found),
    )
    mine = [r for r in records if json.loads(r.value)["run_id"] == source.run_id]
    assert len(mine) == 1 and mine[0].key == b"s3://bucket/unconsumed"
    jsonschema.validate(json.loads(mine[0].value), ASSET_EVENT_SCHEMA)
    event = AssetEventMessage.model_validate_json(mine[0].value)
    assert (event.asset_name, event.asset_uri) == ("unconsumed", "s3://bucket/unconsumed")
    assert event.extra == produced(source)["extra"]
    assert (event.dag_id, event.task_id, event.map_index, event.try_number) == ("produce_unconsumed", "update", -1, 1)
    assert event.source_aliases == []


async def test_an_alias_or_an_asset_each_start_a_run_of_a_consumer_scheduled_on_either(
    asset_worker: Settings, temporal_client: Client
) -> None:
    through_alias = await produce(temporal_client, asset_worker, "produce_through_alias")
    [first_run] = await started_runs(temporal_client, "consume_or", 1)
    alias_event = {
        "extra": {"via": "alias"},
        "source_dag_id": "produce_through_alias",
        "source_run_id": through_alias.run_id,
        "source_task_id": "through_alias",
        "aliases": ["or_alias"],
    }
    assert await consumed(temporal_client, "consume_or", first_run) == {
        "triggering": {"or_y": [alias_event], "alias:or_alias": [alias_event]},
        "inlet_and_a": [],
    }

    direct = await produce(temporal_client, asset_worker, "produce_or_x")
    runs = await started_runs(temporal_client, "consume_or", 2)
    assert (await consumed(temporal_client, "consume_or", runs[1]))["triggering"] == {"or_x": [produced(direct)]}


async def test_events_queued_while_the_only_run_is_active_are_batched_into_the_next_run(
    asset_worker: Settings, temporal_client: Client, asset_gate: Path
) -> None:
    first = await produce(temporal_client, asset_worker, "produce_batch_c")
    [first_run] = await started_runs(temporal_client, "consume_batch", 1)
    # The run holds max_active_runs=1 until the gate opens: the next two events must wait.
    later = [
        await produce(temporal_client, asset_worker, "produce_batch_d"),
        await produce(temporal_client, asset_worker, "produce_batch_c"),
    ]

    async def both_queued() -> None:
        status = await schedule_status(temporal_client, "consume_batch")
        assert len(status.pending_event_ids) == 2 and status.active_run_ids == [first_run], status

    await eventually(both_queued, timeout=WAIT)
    asset_gate.touch()
    assert (await consumed(temporal_client, "consume_batch", first_run))["triggering"] == {"batch_c": [produced(first)]}
    runs = await started_runs(temporal_client, "consume_batch", 2)
    assert (await consumed(temporal_client, "consume_batch", runs[1]))["triggering"] == {
        "batch_d": [produced(later[0])],
        "batch_c": [produced(later[1])],
    }
    assert len((await schedule_status(temporal_client, "consume_batch")).started_run_ids) == 2


async def test_the_events_of_a_try_are_those_airflow_s_dag_test_records(
    asset_worker: Settings, temporal_client: Client
) -> None:
    oracle = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).parent / "asset_oracle.py"),
        str(ASSET_DAGS),
        "produce_mixed",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    # One after the other: dag.test() and its database setup would slow the worker's workflow tasks.
    stdout, _ = await oracle.communicate()
    assert oracle.returncode == 0
    source = await produce(temporal_client, asset_worker, "produce_mixed")
    expected = json.loads(stdout.decode().strip().splitlines()[-1])
    records = await read_records(
        asset_worker.kafka_bootstrap,
        asset_worker.asset_events_topic,
        until=lambda found: sum(json.loads(r.value)["run_id"] == source.run_id for r in found) >= len(expected),
    )
    ours = [
        {
            "asset_name": event.asset_name,
            "asset_uri": event.asset_uri,
            "extra": event.extra,
            "source_aliases": event.source_aliases,
            "task_id": event.task_id,
            "map_index": event.map_index,
        }
        for event in (AssetEventMessage.model_validate_json(r.value) for r in records)
        if event.run_id == source.run_id
    ]

    def order(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # Airflow registers a task's direct outlets in set order.
        return sorted(events, key=lambda e: (e["asset_uri"], json.dumps(e["extra"], sort_keys=True)))

    assert order(ours) == order(expected)


async def test_events_while_paused_queue_nothing_and_the_next_run_after_unpause_consumes_them(
    asset_worker: Settings, temporal_client: Client
) -> None:
    before = await produce(temporal_client, asset_worker, "produce_pause_a")

    async def a_is_queued() -> None:
        status = await schedule_status(temporal_client, "consume_pause_and")
        assert [row.asset.uri for row in status.queued] == ["pause_a"], status

    await eventually(a_is_queued, timeout=WAIT)
    assert await set_paused(temporal_client, "consume_pause_and", True) is False
    during = await produce(temporal_client, asset_worker, "produce_pause_b")

    async def b_is_recorded_not_queued() -> None:
        status = await schedule_status(temporal_client, "consume_pause_and")
        assert len(status.pending_event_ids) == 2, status
        assert [row.asset.uri for row in status.queued] == ["pause_a"] and status.paused, status

    await eventually(b_is_recorded_not_queued, timeout=WAIT)
    # Airflow: pause_b's event did not queue the paused DAG, so unpausing starts nothing...
    assert await set_paused(temporal_client, "consume_pause_and", False) is True
    after = await produce(temporal_client, asset_worker, "produce_pause_b")
    # ...and the run pause_b's next event starts consumes every event since the last run.
    [run_id] = await started_runs(temporal_client, "consume_pause_and", 1)
    assert (await consumed(temporal_client, "consume_pause_and", run_id))["triggering"] == {
        "pause_a": [produced(before)],
        "pause_b": [produced(during), produced(after)],
    }
    assert await workflow_ids(temporal_client, dag_run_workflow_id("consume_pause_and", "")) == [
        dag_run_workflow_id("consume_pause_and", run_id)
    ]


async def test_a_queue_that_holds_while_paused_starts_its_run_only_once_unpaused(
    asset_worker: Settings, temporal_client: Client, asset_gate: Path
) -> None:
    first = await produce(temporal_client, asset_worker, "produce_pause_held")
    [first_run] = await started_runs(temporal_client, "consume_pause_held", 1)
    # The first run holds max_active_runs=1 until its gate opens: this event is queued behind it.
    second = await produce(temporal_client, asset_worker, "produce_pause_held")

    async def queued_behind_the_run() -> None:
        status = await schedule_status(temporal_client, "consume_pause_held")
        assert len(status.queued) == 1 and status.active_run_ids == [first_run], status

    await eventually(queued_behind_the_run, timeout=WAIT)
    assert await set_paused(temporal_client, "consume_pause_held", True) is False
    asset_gate.with_name("open-pause").touch()
    assert (await consumed(temporal_client, "consume_pause_held", first_run))["triggering"] == {
        "pause_held": [produced(first)]
    }

    async def the_run_ended_and_the_row_stayed() -> None:
        status = await schedule_status(temporal_client, "consume_pause_held")
        assert status.active_run_ids == [] and len(status.queued) == 1, status

    await eventually(the_run_ended_and_the_row_stayed, timeout=WAIT)
    assert await set_paused(temporal_client, "consume_pause_held", False) is True
    runs = await started_runs(temporal_client, "consume_pause_held", 2)
    assert (await consumed(temporal_client, "consume_pause_held", runs[1]))["triggering"] == {
        "pause_held": [produced(second)]
    }
    # The history orders what the workflow did: the second run started after the unpause, not before.
    history = await temporal_client.get_workflow_handle(
        asset_schedule_workflow_id("consume_pause_held")
    ).fetch_history()
    updates = [
        e.event_id for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    ]
    [second_start] = [
        e.event_id
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
        and e.start_child_workflow_execution_initiated_event_attributes.workflow_id
        == dag_run_workflow_id("consume_pause_held", runs[1])
    ]
    assert len(updates) == 2 and updates[1] < second_start, (updates, second_start)


async def test_a_dag_paused_upon_creation_runs_only_once_unpaused(
    asset_worker: Settings, temporal_client: Client
) -> None:
    while_paused = await produce(temporal_client, asset_worker, "produce_born_paused")

    async def recorded_not_queued() -> None:
        status = await schedule_status(temporal_client, "consume_born_paused")
        assert status.paused is True and len(status.pending_event_ids) == 1 and status.queued == [], status

    await eventually(recorded_not_queued, timeout=WAIT)
    assert await set_paused(temporal_client, "consume_born_paused", False) is True
    after = await produce(temporal_client, asset_worker, "produce_born_paused")
    [run_id] = await started_runs(temporal_client, "consume_born_paused", 1)
    assert (await consumed(temporal_client, "consume_born_paused", run_id))["triggering"] == {
        "born_paused": [produced(while_paused), produced(after)]
    }
