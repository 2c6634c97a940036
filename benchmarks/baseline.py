"""The baseline: the same shapes as the benchmark DAGs, as plain Temporal activities.

What dagbridge adds on top of Temporal (Airflow's scheduling, the private database, the task
runner in a pool process) is the difference between these figures and dagbridge's, measured in
the same run on the same server.

    python -m benchmarks.baseline TEMPORAL_ADDRESS TASK_QUEUE   # runs the baseline worker
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import PollerBehaviorAutoscaling, Worker


@activity.defn
async def noop_task(value: int) -> tuple[int, datetime, datetime]:
    started = datetime.now(UTC)
    return value + 1, started, datetime.now(UTC)


@workflow.defn
class BaselineChain:
    @workflow.run
    async def run(self, length: int) -> list[tuple[int, datetime, datetime]]:
        spans, value = [], 0
        for _ in range(length):
            value, started, ended = await workflow.execute_activity(
                noop_task, value, start_to_close_timeout=timedelta(minutes=1)
            )
            spans.append((value, started, ended))
        return spans


@workflow.defn
class BaselineFanOut:
    @workflow.run
    async def run(self, width: int) -> list[tuple[int, datetime, datetime]]:
        root = await workflow.execute_activity(noop_task, 0, start_to_close_timeout=timedelta(minutes=1))
        leaves = await asyncio.gather(
            *(
                workflow.execute_activity(noop_task, i, start_to_close_timeout=timedelta(minutes=1))
                for i in range(width)
            )
        )
        return [root, *leaves]


async def serve(address: str, task_queue: str) -> None:
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    # The same poller behaviour as the dagbridge worker, so only what runs differs.
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[BaselineChain, BaselineFanOut],
        activities=[noop_task],
        workflow_task_poller_behavior=PollerBehaviorAutoscaling(),
        activity_task_poller_behavior=PollerBehaviorAutoscaling(),
    ):
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], sys.argv[2]))
