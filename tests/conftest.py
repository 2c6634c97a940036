"""Session-wide real servers and a worker; every history of the session's server must replay."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from schemas.settings import Settings
from tests.environment import SessionEnvironment
from tests.harness import TASK_QUEUE, TEST_DAGS, DagRunner
from tests.processes import WorkerProcess
from tests.replay import assert_every_history_replays
from tests.servers import TemporalDevServer

pytest_plugins = ["tests.bridge_fixtures"]

# Airflow is imported by fixtures and test modules only, once pytest_configure set its environment.
_environment = SessionEnvironment()


def pytest_configure(config: pytest.Config) -> None:
    _environment.apply()


def pytest_unconfigure(config: pytest.Config) -> None:
    _environment.undo()


@pytest.fixture(scope="session")
def server_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server-logs")


@pytest.fixture(scope="session")
def temporal_server(server_logs: Path) -> Iterator[TemporalDevServer]:
    with TemporalDevServer(server_logs) as server:
        yield server


@pytest.fixture(scope="session")
async def temporal_client(temporal_server: TemporalDevServer, server_logs: Path) -> AsyncIterator[Client]:
    client = await Client.connect(temporal_server.address, data_converter=pydantic_data_converter)
    yield client
    await assert_every_history_replays(client, server_logs / "histories-failing-replay")


@pytest.fixture
def worker_processes() -> Iterator[list[WorkerProcess]]:
    """``dagbridge worker`` processes a test starts; any still running are stopped after it."""
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.terminate()


@pytest.fixture(scope="session")
def task_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The logs base of the session's workers."""
    return tmp_path_factory.mktemp("task-logs")


@pytest.fixture(scope="session")
def worker_settings(temporal_server: TemporalDevServer, task_logs: Path) -> Settings:
    return Settings(
        logs_base=str(task_logs),
        temporal_address=temporal_server.address,
        task_queue=TASK_QUEUE,
        dags_folder=TEST_DAGS,
        task_processes=2,
        # Workers started as `dagbridge worker` from these settings are one process each on this
        # small machine; tests/test_worker_processes.py runs several.
        worker_processes=1,
        task_heartbeat_timeout_seconds=5,
        limit_holder_check_seconds=1,
        # Tests that stop a worker mid-try mean to stop it there (the graceful stop has a test of its own).
        shutdown_grace_seconds=0,
        # The test DAGs have no schedules; schedule tests run their own workers on their own folders.
        schedule_sync_seconds=0,
    )


@pytest.fixture(scope="session")
async def worker(worker_settings: Settings, temporal_client: Client) -> AsyncIterator[None]:
    from dagbridge.worker import run_worker

    stop, ready = asyncio.Event(), asyncio.Event()
    running = asyncio.create_task(run_worker(worker_settings, stop, ready))
    await asyncio.wait({running, asyncio.create_task(ready.wait())}, return_when=asyncio.FIRST_COMPLETED)
    if running.done():
        running.result()
    yield
    stop.set()
    await running


@pytest.fixture(scope="session")
def run_dag(temporal_client: Client, worker: None) -> DagRunner:
    return DagRunner(temporal_client)
