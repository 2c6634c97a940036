"""The worker process: runs DAG-run workflows and the activities that execute their tasks."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from temporalio.worker import Worker

from activities.dag_loader import DagLoader
from activities.dags import DagActivities
from activities.tasks import TaskActivities, TaskProcessPool
from schemas.settings import Settings
from workflows.client import connect
from workflows.clock import install_workflow_clock
from workflows.dag_run import DagRunWorkflow

log = logging.getLogger(__name__)


async def run_worker(settings: Settings, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
    """Serve until ``stop`` is set; ``ready`` is set once the worker polls its task queue."""
    install_workflow_clock()
    client = await connect(settings)
    pool = TaskProcessPool(settings.dags_folder, settings.task_processes)
    await asyncio.to_thread(pool.start)
    loader = DagLoader(settings.dags_folder)
    try:
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="dag-loader") as executor:
            worker = Worker(
                client,
                task_queue=settings.task_queue,
                workflows=[DagRunWorkflow],
                activities=[
                    DagActivities(loader).load_serialized_dag,
                    TaskActivities(pool).run_task_try,
                ],
                activity_executor=executor,
                max_concurrent_activities=settings.task_processes + 2,
            )
            async with worker:
                log.info(
                    "worker ready on task queue %s (%s, dags folder %s)",
                    settings.task_queue,
                    settings.temporal_address,
                    settings.dags_folder,
                )
                if ready is not None:
                    ready.set()
                await stop.wait()
    finally:
        pool.shutdown()
