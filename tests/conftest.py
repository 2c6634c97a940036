"""Session-wide real servers and a worker, plus the replay check every workflow history must pass."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Airflow reads its home at import; tests must never touch the user's ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="dagbridge-tests-airflow-"))
# Workers publish events until Kafka has them; tests without a broker run workers without events.
# Tests that need Kafka start Tansu and pass its address explicitly.
os.environ.setdefault("DAGBRIDGE_KAFKA_BOOTSTRAP", "")

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from dagbridge.worker import run_worker
from infra.temporal import start_dag_run
from schemas.names import ASSET_SCHEDULE_WORKFLOW, CONCURRENCY_LIMIT_WORKFLOW, DAG_RUN_WORKFLOW
from schemas.runs import DagRunRequest, DagRunResult, RunOptions
from schemas.settings import Settings
from tests.servers import TemporalDevServer
from workflows.asset_schedule import AssetScheduleWorkflow
from workflows.clock import install_workflow_clock
from workflows.concurrency_limit import ConcurrencyLimitWorkflow
from workflows.dag_run import DagRunWorkflow

pytest_plugins = ["tests.bridge_fixtures"]

TESTS = Path(__file__).parent
TEST_DAGS = TESTS / "dags"
TASK_QUEUE = "dagbridge-tests"
# Pools the test worker declares (DAGBRIDGE_POOLS); each test uses its own, so runs of different
# tests never share slots.
TEST_POOLS = {"pair": 2, "single": 1, "killed_worker": 1, "renewed": 1, "terminated_holder": 1, "left_behind": 1}
LOGICAL_DATE = datetime(2025, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="session")
def server_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server-logs")


@pytest.fixture(scope="session")
def temporal_server(server_logs: Path) -> Iterator[TemporalDevServer]:
    with TemporalDevServer(server_logs) as server:
        yield server


@pytest.fixture(scope="session")
async def temporal_client(temporal_server: TemporalDevServer) -> AsyncIterator[Client]:
    client = await Client.connect(temporal_server.address, data_converter=pydantic_data_converter)
    yield client
    await assert_every_history_replays(client)


async def assert_every_history_replays(client: Client) -> None:
    """Replay every DAG-run and limit history the session produced; any nondeterminism fails the session."""
    histories = [
        await client.get_workflow_handle(execution.id, run_id=execution.run_id).fetch_history()
        async for execution in client.list_workflows(
            f"WorkflowType = '{DAG_RUN_WORKFLOW}' OR WorkflowType = '{CONCURRENCY_LIMIT_WORKFLOW}' "
            f"OR WorkflowType = '{ASSET_SCHEDULE_WORKFLOW}'"
        )
    ]
    install_workflow_clock()
    replayer = Replayer(
        workflows=[DagRunWorkflow, ConcurrencyLimitWorkflow, AssetScheduleWorkflow],
        data_converter=pydantic_data_converter,
    )
    failures = {}
    for history in histories:
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        if result.replay_failure is not None:
            failures[history.workflow_id] = result.replay_failure
    assert histories, "the session produced no workflow history to replay"
    assert not failures, f"{len(failures)} of {len(histories)} histories failed to replay: {failures}"


@pytest.fixture(scope="session")
def worker_settings(temporal_server: TemporalDevServer) -> Settings:
    return Settings(
        temporal_address=temporal_server.address,
        task_queue=TASK_QUEUE,
        dags_folder=TEST_DAGS,
        task_processes=2,
        task_heartbeat_timeout_seconds=5,
        pools=TEST_POOLS,
        limit_holder_check_seconds=1,
    )


@pytest.fixture(scope="session")
async def worker(worker_settings: Settings, temporal_client: Client) -> AsyncIterator[None]:
    stop, ready = asyncio.Event(), asyncio.Event()
    running = asyncio.create_task(run_worker(worker_settings, stop, ready))
    await asyncio.wait({running, asyncio.create_task(ready.wait())}, return_when=asyncio.FIRST_COMPLETED)
    if running.done():
        running.result()
    yield
    stop.set()
    await running


class DagRunner:
    """Starts DAG runs on the test worker and waits for their results."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._count = 0

    async def __call__(
        self,
        dag_id: str,
        *,
        run_id: str | None = None,
        conf: dict[str, Any] | None = None,
        serialized_dag: dict[str, Any] | None = None,
        options: RunOptions | None = None,
    ) -> DagRunResult:
        handle = await self.start(dag_id, run_id=run_id, conf=conf, serialized_dag=serialized_dag, options=options)
        return await handle.result()

    async def start(
        self,
        dag_id: str,
        *,
        run_id: str | None = None,
        conf: dict[str, Any] | None = None,
        serialized_dag: dict[str, Any] | None = None,
        options: RunOptions | None = None,
        task_queue: str = TASK_QUEUE,
    ):
        self._count += 1
        request = DagRunRequest(
            dag_id=dag_id,
            run_id=run_id or f"test__{os.getpid()}_{self._count}_{datetime.now(UTC):%H%M%S%f}",
            logical_date=LOGICAL_DATE,
            conf=conf or {},
            serialized_dag=serialized_dag,
            options=options or RunOptions(default_task_queue=TASK_QUEUE, task_heartbeat_timeout_seconds=5),
        )
        return await start_dag_run(self.client, request, task_queue)


@pytest.fixture(scope="session")
def run_dag(temporal_client: Client, worker: None) -> DagRunner:
    return DagRunner(temporal_client)
