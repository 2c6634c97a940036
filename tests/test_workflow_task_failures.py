"""A workflow task that fails on the worker is counted by error type and named in a warning."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from prometheus_client import REGISTRY
from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from activities.workflow_task_failures import WorkflowTaskFailures, workflow_task_failures
from schemas.ids import dag_run_workflow_id
from tests.failing_workflows import RELEASE, HoldsItsThread, RaisesInWorkflowCode
from tests.servers import TemporalDevServer

METRIC = "dagbridge_workflow_task_failures_total"
# A bound on waiting for what must happen, not a measure of how fast it happens.
PATIENCE_SECONDS = 120
TASK_QUEUE = f"workflow-task-failures-{uuid.uuid4().hex[:8]}"


def failures_of(error_type: str) -> float:
    return REGISTRY.get_sample_value(METRIC, {"error_type": error_type}) or 0.0


@pytest.fixture(scope="module")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporalDevServer]:
    """A server of this module's own: its workflows never complete, and are not DAG runs to replay."""
    with TemporalDevServer(tmp_path_factory.mktemp("failures-server")) as server:
        yield server


@pytest.fixture
async def temporal_client(temporal_server: TemporalDevServer) -> Client:
    return await Client.connect(temporal_server.address)


@pytest.fixture
async def failing_worker(temporal_client: Client) -> AsyncIterator[WorkflowTaskFailures]:
    """A worker wired as dagbridge's: the failure handler installed, its runners in the Worker."""
    RELEASE.clear()
    failures = workflow_task_failures()
    worker = Worker(
        temporal_client,
        task_queue=TASK_QUEUE,
        workflows=[RaisesInWorkflowCode, HoldsItsThread],
        workflow_runner=failures.workflow_runner,
        unsandboxed_workflow_runner=failures.unsandboxed_workflow_runner,
    )
    try:
        async with worker:
            yield failures
            # A held activation blocks the worker's shutdown (and its eviction): let it go first.
            RELEASE.set()
    finally:
        RELEASE.set()


async def until_counted(error_type: str, above: float) -> None:
    deadline = time.monotonic() + PATIENCE_SECONDS
    while failures_of(error_type) <= above:
        assert time.monotonic() < deadline, f"no {error_type} workflow task failure counted"
        await asyncio.sleep(0.2)


async def start(client: Client, workflow: str, dag_id: str) -> WorkflowHandle:
    workflow_id = dag_run_workflow_id(dag_id, f"manual__{uuid.uuid4().hex}")
    return await client.start_workflow(workflow, id=workflow_id, task_queue=TASK_QUEUE)


def warnings_naming(caplog: pytest.LogCaptureFixture, workflow_id: str) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == "activities.workflow_task_failures"
        and record.levelno == logging.WARNING
        and workflow_id in record.getMessage()
    ]


@pytest.mark.parametrize(
    ("workflow", "error_type"),
    [("test-raises-in-workflow-code", "TypeError"), ("test-holds-its-thread", "DeadlockError")],
    ids=["exception in workflow code", "deadlock detector"],
)
async def test_a_failing_workflow_task_is_counted_and_named(
    workflow: str,
    error_type: str,
    temporal_client: Client,
    failing_worker: WorkflowTaskFailures,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="activities.workflow_task_failures")
    before = failures_of(error_type)
    handle = await start(temporal_client, workflow, "failing_workflow_task")
    try:
        await until_counted(error_type, before)
        [warning, *_] = warnings_naming(caplog, handle.id)
        message = warning.getMessage()
        assert f"failed with {error_type}" in message
        assert workflow in message
        # The run's IDs travel as the SDK's context, which the log format turns into dag_id and run_id.
        assert warning.temporal_workflow == {"workflow_id": handle.id}
    finally:
        # Ended before released, so a released activation cannot complete the workflow instead.
        await handle.terminate("test over")
        RELEASE.set()


def activation_failure(error: BaseException) -> logging.LogRecord:
    """The record the SDK's worker logs when handling an activation raised ``error``."""
    return logging.makeLogRecord(
        {
            "name": "temporalio.worker._workflow",
            "msg": "Failed handling activation on workflow with run ID %s",
            "args": ("a-temporal-run-id",),
            "levelno": logging.ERROR,
            "exc_info": (type(error), error, None),
        }
    )


def test_only_what_fails_a_workflow_task_counts() -> None:
    failures = WorkflowTaskFailures()
    before = failures_of("ApplicationError"), failures_of("ValueError")
    # A non-retryable ApplicationError fails the workflow (the run ends and says why), not the task.
    failures.handle(activation_failure(ApplicationError("no such DAG", non_retryable=True)))
    # Other records of the SDK's loggers, even with an exception attached.
    for name in ("temporalio.worker._workflow_instance", "temporalio.worker._workflow"):
        other = {"name": name, "msg": "other", "exc_info": (ValueError, ValueError(), None)}
        failures.handle(logging.makeLogRecord(other))
    assert (failures_of("ApplicationError"), failures_of("ValueError")) == before

    failures.handle(activation_failure(ApplicationError("retryable")))
    assert failures_of("ApplicationError") == before[0] + 1
