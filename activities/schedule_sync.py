"""Keeps every DAG's schedule workflow in step with the dags folder, from each worker.

At start and then every ``DAGBRIDGE_SCHEDULE_SYNC_SECONDS`` the worker reads the folder (files are
parsed again only when their mtime changed) and, for each scheduled DAG that is new or whose
schedule fingerprint changed, signals ``dag_changed`` to ``schedule:<dag_id>`` with
signal-with-start: the server starts the workflow if none runs, so two workers doing this at once
still make one schedule. A DAG that left the folder (or lost its schedule) gets the signal too;
its workflow then finds it gone and goes quiet, keeping where it stood in case the DAG comes back
(Airflow keeps a removed DAG's runs and resumes from them too).

A DAG scheduled on assets gets its ``assets:<dag_id>`` workflow the same way (signal-with-start,
with no events) when a worker first sees it, not only when its first event comes: it can be
paused before any event, and ``is_paused_upon_creation`` applies from then on.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities import timetables
from activities.asset_consumers import asset_consumers
from activities.dag_loader import DagLoader
from activities.schedules import SchedulerViews
from infra.temporal import run_options
from schemas.assets import AssetScheduleInput
from schemas.ids import SCHEDULE_PREFIX, asset_schedule_workflow_id, schedule_workflow_id
from schemas.names import ASSET_EVENTS_SIGNAL, ASSET_SCHEDULE_WORKFLOW, DAG_CHANGED_SIGNAL, DAG_SCHEDULE_WORKFLOW
from schemas.schedules import ScheduleState
from schemas.settings import Settings

log = logging.getLogger(__name__)


class ScheduleSync:
    def __init__(self, client: Client, loader: DagLoader, views: SchedulerViews, settings: Settings) -> None:
        self._client = client
        self._loader = loader
        self._views = views
        self._settings = settings
        # What this worker last told each schedule; None until the first sync.
        self._told: dict[str, str] | None = None
        # The asset-scheduled DAGs whose workflow this worker made sure of.
        self._asset_scheduled: set[str] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Sync now and then every interval until ``stop``; a failed sync is logged and retried."""
        while not stop.is_set():
            try:
                await self.sync_once()
            except Exception:
                log.exception("could not bring the schedules in step with the dags folder; retrying")
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._settings.schedule_sync_seconds)

    async def sync_once(self) -> dict[str, str]:
        """Signal the schedules whose DAG changed; returns dag_id -> fingerprint of the scheduled DAGs."""
        scheduled = await asyncio.to_thread(self._scheduled_dags)
        told = self._told if self._told is not None else {}
        changed = {dag_id: print_ for dag_id, print_ in scheduled.items() if told.get(dag_id) != print_}
        gone = set(told) - set(scheduled)
        if self._told is None:
            # A DAG removed while no worker ran still has its workflow: find it by its task queue.
            gone |= await self._running_schedules() - set(scheduled)
        on_assets = await asyncio.to_thread(self._asset_scheduled_dags)
        new_on_assets = on_assets - self._asset_scheduled
        await asyncio.gather(
            *(self._tell(dag_id, fingerprint) for dag_id, fingerprint in changed.items()),
            *(self._tell_gone(dag_id) for dag_id in gone),
            *(self._ensure_asset_schedule(dag_id) for dag_id in new_on_assets),
        )
        if changed or gone or new_on_assets:
            log.info(
                "schedules in step: %d changed or new, %d gone, %d new on assets",
                len(changed),
                len(gone),
                len(new_on_assets),
            )
        self._told = scheduled
        self._asset_scheduled = on_assets
        return scheduled

    def _scheduled_dags(self) -> dict[str, str]:
        scheduled = {}
        for dag_id in self._loader.all_dags():
            try:
                view = self._views.get(dag_id)
            except Exception as err:
                log.warning("DAG %s cannot be scheduled: %s", dag_id, err)
                continue
            if timetables.scheduling_problem(view) is None:
                scheduled[dag_id] = timetables.schedule_fingerprint(view)
        return scheduled

    def _asset_scheduled_dags(self) -> set[str]:
        return {consumer.dag_id for consumer in asset_consumers(list(self._loader.all_dags().values()))}

    async def _ensure_asset_schedule(self, dag_id: str) -> None:
        # As an asset event's publisher does it, with no event: a running workflow just ignores it.
        await self._client.start_workflow(
            ASSET_SCHEDULE_WORKFLOW,
            AssetScheduleInput(dag_id=dag_id, options=run_options(self._settings)),
            id=asset_schedule_workflow_id(dag_id),
            task_queue=self._settings.task_queue,
            start_signal=ASSET_EVENTS_SIGNAL,
            start_signal_args=[[]],
        )

    async def _tell(self, dag_id: str, fingerprint: str) -> None:
        await self._client.start_workflow(
            DAG_SCHEDULE_WORKFLOW,
            ScheduleState(dag_id=dag_id, options=run_options(self._settings)),
            id=schedule_workflow_id(dag_id),
            task_queue=self._settings.task_queue,
            start_signal=DAG_CHANGED_SIGNAL,
            start_signal_args=[fingerprint],
        )

    async def _tell_gone(self, dag_id: str) -> None:
        try:
            await self._client.get_workflow_handle(schedule_workflow_id(dag_id)).signal(DAG_CHANGED_SIGNAL, None)
        except RPCError as err:
            if err.status is not RPCStatusCode.NOT_FOUND:
                raise

    async def _running_schedules(self) -> set[str]:
        query = (
            f"WorkflowType = '{DAG_SCHEDULE_WORKFLOW}' AND ExecutionStatus = 'Running' "
            f"AND TaskQueue = '{self._settings.task_queue}'"
        )
        return {execution.id.removeprefix(SCHEDULE_PREFIX) async for execution in self._client.list_workflows(query)}
