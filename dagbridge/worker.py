"""The worker process: runs DAG-run workflows and the activities that execute their tasks."""

from __future__ import annotations

import asyncio
import gc
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy.orm import configure_mappers
from temporalio.client import Client
from temporalio.worker import PollerBehaviorAutoscaling, Worker

import airflow_adapter
from activities import triggerer_comms
from activities.asset_publishing import AssetEventRouter
from activities.callbacks import CallbackActivities
from activities.dag_loader import DagLoader
from activities.dags import DagActivities
from activities.events import EventActivities, EventPublisher
from activities.limits import LimitActivities, PoolSizes
from activities.schedule_sync import ScheduleSync
from activities.schedules import ScheduleActivities, SchedulerViews
from activities.tasks import TaskActivities, TaskProcessPool
from activities.triggerer import TriggererActivities
from activities.workflow_task_failures import workflow_task_failures
from infra.metrics_server import serve_metrics
from infra.temporal import connect_when_available, register_search_attributes
from infra.workflow_activations import never_interrupt_activations
from schemas.ids import triggers_task_queue
from schemas.settings import Settings
from workflows.asset_schedule import AssetScheduleWorkflow
from workflows.backfill import BackfillWorkflow
from workflows.concurrency_limit import ConcurrencyLimitWorkflow
from workflows.dag_run import DagRunWorkflow
from workflows.dag_schedule import DagScheduleWorkflow

log = logging.getLogger(__name__)

# A task learns that its run was cancelled from the answer to a heartbeat, and the SDK sends
# heartbeats at most every 0.8 heartbeat timeouts (24 s by default): this bounds that delay.
MAX_HEARTBEAT_THROTTLE = timedelta(seconds=2)


async def run_worker(settings: Settings, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
    """Serve until ``stop`` is set; ``ready`` is set once the worker polls its task queue."""
    # Before anything runs: fails at start, naming what changed, if Airflow is not the expected one.
    airflow_adapter.install()
    # Configure Airflow's ORM mappers now, once: the first DAG run would otherwise do it inside a
    # workflow task, while many runs start at once.
    configure_mappers()
    # Before connecting: the client picks up the runtime that reports the SDK's metrics.
    metrics_server = serve_metrics(settings)
    try:
        # A worker started while Temporal is down (or restarting) waits for it, as the bridge does.
        client = await connect_when_available(settings, stop)
        if client is not None:
            await _serve(settings, client, stop, ready)
    finally:
        if metrics_server is not None:
            metrics_server.close()


async def _serve(settings: Settings, client: Client, stop: asyncio.Event, ready: asyncio.Event | None) -> None:
    await register_search_attributes(client)
    pool = TaskProcessPool(settings)
    await asyncio.to_thread(pool.start)
    loader = DagLoader(settings.dags_folder)
    events = EventPublisher(settings)
    event_activities = EventActivities(events)
    limit_activities = LimitActivities(client, PoolSizes(settings.pools), settings)
    views = SchedulerViews(loader)
    schedule_activities = ScheduleActivities(client, views)
    # Failing workflow tasks are retried for ever without a word in the run's result: count and name them.
    failures = workflow_task_failures()
    if not events.enabled:
        log.warning("DAGBRIDGE_KAFKA_BOOTSTRAP is empty: task and run events are not published")
    # Everything imported so far lives as long as the process: keep it out of the collector's
    # full passes, which otherwise stall workflow tasks for ~200 ms on Airflow's object graph.
    gc.collect()
    gc.freeze()
    try:
        max_activities = settings.task_processes + 2
        # Task tries run in the process pool; these threads only serve synchronous activities.
        with ThreadPoolExecutor(max_workers=max_activities, thread_name_prefix="activity") as executor:
            worker = Worker(
                client,
                task_queue=settings.task_queue,
                workflows=[DagRunWorkflow, DagScheduleWorkflow, BackfillWorkflow, AssetScheduleWorkflow],
                workflow_runner=failures.workflow_runner,
                unsandboxed_workflow_runner=failures.unsandboxed_workflow_runner,
                activities=[
                    DagActivities(loader).load_serialized_dag,
                    TaskActivities(pool, events=events, assets=AssetEventRouter(settings, loader, events)).run_task_try,
                    CallbackActivities(pool).run_callbacks,
                    event_activities.publish_run_event,
                    event_activities.publish_task_event,
                    limit_activities.change_slots,
                    schedule_activities.next_scheduled_run,
                    schedule_activities.plan_backfill,
                    schedule_activities.run_states,
                ],
                activity_executor=executor,
                max_concurrent_activities=max_activities,
                max_concurrent_workflow_tasks=settings.workflow_tasks_per_process,
                max_heartbeat_throttle_interval=MAX_HEARTBEAT_THROTTLE,
                # On SIGTERM running tries get this long to end before they are stopped and
                # handed back to Temporal (then retried elsewhere as the same Airflow try).
                graceful_shutdown_timeout=timedelta(seconds=settings.shutdown_grace_seconds),
                # Pollers that follow the load keep a poll waiting when a task arrives, so tasks
                # are matched (and activities dispatched eagerly) instead of queued.
                workflow_task_poller_behavior=PollerBehaviorAutoscaling(),
                activity_task_poller_behavior=PollerBehaviorAutoscaling(),
            )
            never_interrupt_activations(worker)
            # Every worker serves the limits, whatever its own task queue: a limit is shared by
            # runs on all queues and must outlive any one worker.
            limits_worker = Worker(
                client,
                task_queue=settings.limits_task_queue,
                workflows=[ConcurrencyLimitWorkflow],
                workflow_runner=failures.workflow_runner,
                unsandboxed_workflow_runner=failures.unsandboxed_workflow_runner,
                activities=[limit_activities.closed_workflows],
                workflow_task_poller_behavior=PollerBehaviorAutoscaling(),
            )
            never_interrupt_activations(limits_worker)
            triggerer_comms.install(client)
            # The triggerer: async activities only, so a waiting trigger costs a coroutine on this
            # event loop, never a task process or a thread.
            triggerer = Worker(
                client,
                task_queue=triggers_task_queue(settings.task_queue),
                activities=[TriggererActivities().run_trigger],
                max_concurrent_activities=settings.triggers_per_worker,
                # The SDK's default: heartbeats at most every 0.8 trigger heartbeat timeouts, at
                # most every 60 s, so thousands of waiting triggers cost the server little.
                activity_task_poller_behavior=PollerBehaviorAutoscaling(),
            )
            async with worker, limits_worker, triggerer:
                log.info(
                    "worker ready on task queue %s (%s, dags folder %s)",
                    settings.task_queue,
                    settings.temporal_address,
                    settings.dags_folder,
                )
                syncing = None
                if settings.schedule_sync_seconds > 0:
                    syncing = asyncio.create_task(ScheduleSync(client, loader, views, settings).run(stop))
                if ready is not None:
                    ready.set()
                await stop.wait()
                if syncing is not None:
                    await syncing
    finally:
        pool.shutdown()
        await events.close()
