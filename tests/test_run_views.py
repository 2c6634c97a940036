"""DAG runs in Temporal's UI and CLI: search attributes, the task grid, `dagbridge runs` and `status`."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import EventType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError

from infra.temporal import register_search_attributes, start_dag_run
from schemas import run_attributes
from schemas.runs import DagRunRequest, RunOptions, RunType
from schemas.settings import Settings
from tests.harness import DagRunner
from tests.held_runs import DAG_ID, RUN_TIMEOUT, dagbridge, start_held, wait_for_file
from workflows.run_view import GRID_TASKS, task_grid


async def runs_listed(settings: Settings, *args: str) -> list[dict]:
    listed = await asyncio.to_thread(dagbridge, settings, "runs", *args, "--json")
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout)


async def wait_for_state(client: Client, run_id: str, state: str) -> None:
    """Visibility is eventually consistent: the upserted state shows up shortly after the command."""
    query = f"{run_attributes.RUN_ID.name} = '{run_id}' AND {run_attributes.RUN_STATE.name} = '{state}'"
    async with asyncio.timeout(RUN_TIMEOUT):
        while not [execution async for execution in client.list_workflows(query)]:
            await asyncio.sleep(0.2)


async def test_runs_and_status_follow_a_run_from_running_to_failed(
    run_dag: DagRunner, worker_settings: Settings, temporal_client: Client, tmp_path: Path
) -> None:
    handle = await start_held(run_dag, "foxtrot", tmp_path, conf={"fail": True})
    await wait_for_file(tmp_path / "started-foxtrot")
    await wait_for_state(temporal_client, "logs__foxtrot", run_attributes.RUNNING)

    running = await runs_listed(worker_settings, DAG_ID, "--state", "running")
    assert [(run["run_id"], run["run_type"], run["trigger_source"]) for run in running] == [
        ("logs__foxtrot", "manual", "api")
    ]
    status = await asyncio.to_thread(dagbridge, worker_settings, "status", DAG_ID, "logs__foxtrot", "--json")
    assert status.returncode == 0, status.stderr
    grid = json.loads(status.stdout)
    assert grid["state"] == "running"
    assert [(ti["task_id"], ti["state"], ti["try_number"]) for ti in grid["task_instances"]] == [("talk", "running", 1)]

    (tmp_path / "release").touch()
    result = await asyncio.wait_for(handle.result(), RUN_TIMEOUT)
    assert result.state == "failed"
    await wait_for_state(temporal_client, "logs__foxtrot", run_attributes.FAILED)

    assert "logs__foxtrot" not in [
        run["run_id"] for run in await runs_listed(worker_settings, DAG_ID, "--state", "running")
    ]
    failed = await runs_listed(worker_settings, DAG_ID, "--state", "failed")
    assert "logs__foxtrot" in [run["run_id"] for run in failed]
    assert all(run["dag_id"] == DAG_ID for run in await runs_listed(worker_settings, DAG_ID))
    text = await asyncio.to_thread(dagbridge, worker_settings, "status", DAG_ID, "logs__foxtrot")
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines()[0] == f"{DAG_ID} logs__foxtrot: failed"
    assert text.stdout.splitlines()[2].split()[:3] == ["talk", "failed", "1"]

    # The UI's view: the try's activity carries a summary, the workflow its task grid.
    history = await handle.fetch_history()
    summaries = [
        temporal_client.data_converter.payload_converter.from_payload(event.user_metadata.summary, str)
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED and event.user_metadata.HasField("summary")
    ]
    assert summaries == ["talk try 1"]
    # The grid's last state is the run's end, not its last pass while running.
    metadata = await handle.query("__temporal_workflow_metadata")
    assert metadata.current_details.splitlines()[:5] == ["**DAG run failed**", "", "```", "task  state", "talk  failed"]


async def test_status_of_a_succeeded_run_and_one_line_errors(
    run_dag: DagRunner, worker_settings: Settings, tmp_path: Path
) -> None:
    handle = await start_held(run_dag, "golf", tmp_path)
    (tmp_path / "release").touch()
    assert (await asyncio.wait_for(handle.result(), RUN_TIMEOUT)).state == "success"

    status = await asyncio.to_thread(dagbridge, worker_settings, "status", DAG_ID, "logs__golf", "--json")
    grid = json.loads(status.stdout)
    assert (grid["state"], grid["workflow_status"]) == ("success", "completed")
    [talk] = grid["task_instances"]
    assert (talk["state"], talk["try_number"]) == ("success", 1) and talk["duration_seconds"] >= 0

    missing = await asyncio.to_thread(dagbridge, worker_settings, "status", DAG_ID, "no_such_run")
    assert (missing.returncode, missing.stdout) == (1, "")
    assert missing.stderr == f"dagbridge: no DAG run {DAG_ID} no_such_run (no workflow dagrun:{DAG_ID}:no_such_run)\n"
    bad = await asyncio.to_thread(dagbridge, worker_settings, "runs", "x' OR 'y")
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1
    unreachable = await asyncio.to_thread(
        dagbridge, worker_settings.model_copy(update={"temporal_address": "127.0.0.1:1"}), "runs"
    )
    assert unreachable.returncode == os.EX_UNAVAILABLE
    assert unreachable.stderr.startswith("dagbridge: cannot reach Temporal at 127.0.0.1:1")
    assert unreachable.stderr.count("\n") == 1


async def namespace_client(temporal_client: Client, namespace: str) -> Client:
    """A client of a namespace registered now, once the server serves it (namespaces are cached)."""
    await temporal_client.workflow_service.register_namespace(
        RegisterNamespaceRequest(namespace=namespace, workflow_execution_retention_period=Duration(seconds=86400))
    )
    client = await Client.connect(
        temporal_client.service_client.config.target_host, namespace=namespace, data_converter=pydantic_data_converter
    )
    async with asyncio.timeout(RUN_TIMEOUT):
        while True:
            try:
                await client.count_workflows()
                return client
            except RPCError:
                await asyncio.sleep(0.2)


async def listed(client: Client, query: str, expected: int) -> list[str]:
    """The run IDs the visibility query finds, once it finds ``expected`` (visibility lags the starts)."""
    async with asyncio.timeout(RUN_TIMEOUT):
        while True:
            found = [
                execution.typed_search_attributes.get(run_attributes.RUN_ID)
                async for execution in client.list_workflows(query)
            ]
            if len(found) >= expected:
                return sorted(found)
            await asyncio.sleep(0.2)


async def test_search_attributes_registered_on_a_new_namespace_filter_runs_by_each(
    temporal_client: Client, worker_settings: Settings
) -> None:
    namespace = f"runs-{uuid.uuid4().hex[:8]}"
    client = await namespace_client(temporal_client, namespace)
    names = [key.name for key in run_attributes.ALL]

    async def registered() -> list[str]:
        answer = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
        return [name for name in names if name in answer.custom_attributes]

    assert await registered() == []
    await register_search_attributes(client)
    await register_search_attributes(client)  # a second worker's start: nothing left to add
    assert await registered() == names

    # Runs of two DAGs from three sources. No worker polls this namespace: they stay queued, as
    # their start set them, which is what visibility filters on.
    runs = [("orders", "r1", RunType.MANUAL, "kafka"), ("orders", "r2", RunType.SCHEDULED, "schedule"),
            ("invoices", "r3", RunType.MANUAL, "cli")]  # fmt: skip
    handles = []
    for dag_id, run_id, run_type, source in runs:
        request = DagRunRequest(
            dag_id=dag_id,
            run_id=run_id,
            logical_date=datetime.now(UTC),
            run_type=run_type,
            options=RunOptions(default_task_queue="no-worker"),
        )
        handles.append(await start_dag_run(client, request, "no-worker", trigger_source=source))
    try:
        assert await listed(client, "DagId = 'orders'", 2) == ["r1", "r2"]
        assert await listed(client, "DagId = 'invoices'", 1) == ["r3"]
        assert await listed(client, "TriggerSource = 'kafka'", 1) == ["r1"]
        assert await listed(client, "DagRunType = 'scheduled'", 1) == ["r2"]
        assert await listed(client, "DagRunState = 'queued' AND DagId = 'orders' AND DagRunId = 'r2'", 1) == ["r2"]
        assert await listed(client, "DagRunState = 'running'", 0) == []

        settings = worker_settings.model_copy(update={"temporal_namespace": namespace})
        orders = await runs_listed(settings, "orders")
        assert sorted((run["run_id"], run["run_type"], run["trigger_source"], run["state"]) for run in orders) == [
            ("r1", "manual", "kafka", "queued"),
            ("r2", "scheduled", "schedule", "queued"),
        ]
        # Two starts may share a start time: which of them is the newest is not asked here.
        assert [run["dag_id"] for run in await runs_listed(settings, "orders", "--limit", "1")] == ["orders"]
        assert await runs_listed(settings, "orders", "--state", "success") == []
    finally:
        for handle in handles:
            await handle.terminate("test over")


def test_task_grid_lists_tasks_in_the_dags_order_and_counts_mapped_instances_by_state() -> None:
    states = {
        "report": [(-1, None)],
        "extract": [(-1, "success")],
        "transform": [(0, "success"), (1, "failed"), (2, "up_for_retry"), (3, "success")],
    }
    grid = task_grid("running", states, ["extract", "transform", "report"])
    assert grid.splitlines() == [
        "**DAG run running**",
        "",
        "```",
        "task           state",
        "extract        success",
        "transform [4]  1 failed, 1 up_for_retry, 2 success",
        "report         none",
        "```",
    ]


def test_task_grid_of_a_large_run_counts_the_tasks_it_leaves_out() -> None:
    task_ids = [f"task_{index:03}" for index in range(GRID_TASKS + 7)]
    grid = task_grid("success", {task_id: [(-1, "success")] for task_id in reversed(task_ids)}, task_ids)
    rows = grid.splitlines()[4:-1]
    assert [row.split()[0] for row in rows[:GRID_TASKS]] == task_ids[:GRID_TASKS]
    assert rows[GRID_TASKS:] == ["… 7 more tasks"]
