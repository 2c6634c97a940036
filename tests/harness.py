"""What many test modules share: where the test DAGs are, the session worker's queue, starting runs."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client, WorkflowHandle

from infra.temporal import start_dag_run
from schemas.runs import DagRunRequest, DagRunResult, RunOptions

TESTS = Path(__file__).parent
TEST_DAGS = TESTS / "dags"
TASK_QUEUE = "dagbridge-tests"
LOGICAL_DATE = datetime(2025, 3, 1, tzinfo=UTC)


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


async def wait_until_running(handle: WorkflowHandle, activity_id: str, timeout: float = 60) -> None:
    async with asyncio.timeout(timeout):
        while True:
            description = await handle.describe()
            if any(
                pending.activity_id == activity_id
                and pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
                for pending in description.raw_description.pending_activities
            ):
                return
            await asyncio.sleep(0.2)
