"""A burst of runs of one DAG into a cold stack: every run completes, within the DAG's max_active_runs.

A fresh Temporal dev server with its default limits (in-flight and total updates per workflow
included) and a fresh ``dagbridge worker`` process, so the burst meets the first DAG load, the
first limit workflow start and a cold workflow cache, as a newly deployed stack would.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter

from infra.temporal import start_dag_run
from schemas.runs import DagRunRequest, DagRunResult, RunOptions
from schemas.settings import Settings
from tests.harness import LOGICAL_DATE, TEST_DAGS
from tests.history import most_at_once
from tests.processes import WorkerProcess
from tests.replay import assert_every_history_replays
from tests.servers import TemporalDevServer

BURST_QUEUE = "dagbridge-burst"
BURST_LIMITS_QUEUE = "dagbridge-burst-limits"
DAG_ID = "one_task"
MAX_ACTIVE_RUNS = 16  # Airflow's default, which the DAG keeps
# The suite's burst; BURST_RUNS=1000 makes it the soak-sized burst.
BURST_RUNS = int(os.environ.get("BURST_RUNS", "150"))


@pytest.fixture(scope="module")
def cold_server(server_logs: Path) -> Iterator[TemporalDevServer]:
    with TemporalDevServer(server_logs / "burst") as server:
        yield server


@pytest.fixture(scope="module")
async def cold_client(cold_server: TemporalDevServer, server_logs: Path) -> AsyncIterator[Client]:
    client = await Client.connect(cold_server.address, data_converter=pydantic_data_converter)
    yield client
    await assert_every_history_replays(client, server_logs / "burst-histories-failing-replay")


@pytest.fixture(scope="module")
def cold_worker(cold_server: TemporalDevServer, server_logs: Path) -> Iterator[WorkerProcess]:
    settings = Settings(
        temporal_address=cold_server.address,
        task_queue=BURST_QUEUE,
        limits_task_queue=BURST_LIMITS_QUEUE,
        dags_folder=TEST_DAGS,
        kafka_bootstrap="",
        task_processes=2,
    )
    worker = WorkerProcess(settings, server_logs / "burst-worker.log")
    yield worker
    worker.terminate()


def _request(index: int) -> DagRunRequest:
    return DagRunRequest(
        dag_id=DAG_ID,
        run_id=f"burst__{index:05d}",
        logical_date=LOGICAL_DATE,
        options=RunOptions(default_task_queue=BURST_QUEUE),
    )


async def test_a_burst_of_one_dag_into_a_cold_stack_completes_every_run(
    cold_client: Client, cold_worker: WorkerProcess
) -> None:
    # All starts at once, as a bridge draining a full partition would, while the worker still starts.
    handles: list[WorkflowHandle] = await asyncio.gather(
        *(start_dag_run(cold_client, _request(index), BURST_QUEUE) for index in range(BURST_RUNS))
    )
    results: list[DagRunResult] = await asyncio.gather(*(handle.result() for handle in handles))

    assert [result.state for result in results] == ["success"] * BURST_RUNS
    assert cold_worker.process.poll() is None, "the worker died during the burst"
    assert most_at_once([(result.start_date, result.end_date) for result in results]) <= MAX_ACTIVE_RUNS
