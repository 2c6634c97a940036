"""Activities of concurrency limits: deliver a DAG run's slot changes, find holders that are gone.

A DAG run exchanges slots through a local activity (it sits between one try's end and the next
try's start); a limit looks for closed holders with an ordinary one. Either way their answers (a
pool's size from this worker's configuration, which holders are closed) are recorded in history,
so a replay reaches the same decisions.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from airflow.configuration import conf as airflow_conf
from airflow.models.pool import Pool
from temporalio import activity
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from schemas.ids import limit_kind
from schemas.limits import (
    UNLIMITED,
    LimitKind,
    LimitState,
    LimitUpdate,
    SlotAnswers,
    SlotChanges,
    SlotClaim,
    SlotGrant,
    SlotRefusal,
    SlotRequest,
)
from schemas.names import (
    CHANGE_SLOTS_ACTIVITY,
    CHANGE_SLOTS_UPDATE,
    CLOSED_WORKFLOWS_ACTIVITY,
    CONCURRENCY_LIMIT_WORKFLOW,
    QUEUE_SLOT_CHANGES_SIGNAL,
)
from schemas.settings import Settings


class PoolSizes:
    """Slots of each pool as this worker is configured: DAGBRIDGE_POOLS, plus Airflow's default_pool."""

    def __init__(self, declared: dict[str, int]) -> None:
        self._sizes = {Pool.DEFAULT_POOL_NAME: airflow_conf.getint("core", "default_pool_task_slot_count")}
        self._sizes.update(declared)

    def capacity(self, claim: SlotClaim) -> int | str:
        """The pool's slots, or why the claim can never be granted."""
        size = self._sizes.get(claim.name)
        if size is None:
            declared = ", ".join(sorted(self._sizes))
            return f"pool {claim.name!r} is not declared in DAGBRIDGE_POOLS (declared pools: {declared})"
        if size != UNLIMITED and claim.slots > size:
            return f"task needs {claim.slots} slots of pool {claim.name!r}, which has {size}"
        return size


class LimitActivities:
    def __init__(self, client: Client, pool_sizes: PoolSizes, settings: Settings) -> None:
        self._client = client
        self._pool_sizes = pool_sizes
        self._holder_check_seconds = settings.limit_holder_check_seconds
        self._task_queue = settings.limits_task_queue

    @activity.defn(name=CHANGE_SLOTS_ACTIVITY)
    async def change_slots(self, changes: SlotChanges) -> SlotAnswers:
        """One message per limit, releases before requests; a limit that does not exist yet is started.

        Answers the claims that can never be granted and those granted at once; the others are
        granted later by ``slots_granted`` signals.
        """
        refusals: list[SlotRefusal] = []
        capacities: dict[str, int] = {}
        requests: dict[str, list[SlotRequest]] = defaultdict(list)
        for claim in changes.acquire:
            capacity = self._pool_sizes.capacity(claim) if claim.kind is LimitKind.POOL else claim.capacity
            assert capacity is not None  # SlotClaim requires it of every limit but pools
            if isinstance(capacity, str):
                refusals.append(SlotRefusal(holder=claim.holder, limit_id=claim.limit_id, reason=capacity))
                continue
            capacities[claim.limit_id] = capacity
            requests[claim.limit_id].append(
                SlotRequest(
                    holder=claim.holder,
                    requester=changes.requester,
                    slots=claim.slots,
                    priority_weight=claim.priority_weight,
                )
            )
        releases = {release.limit_id: release.holders for release in changes.release}
        limit_ids = sorted(releases.keys() | requests.keys())
        granted = await asyncio.gather(
            *(
                self._send(
                    limit_id,
                    LimitUpdate(
                        requester=changes.requester,
                        capacity=capacities.get(limit_id),
                        holder_check_seconds=self._holder_check_seconds,
                        release=releases.get(limit_id, []),
                        acquire=requests.get(limit_id, []),
                    ),
                )
                for limit_id in limit_ids
            )
        )
        return SlotAnswers(
            refusals=refusals,
            grants=[
                SlotGrant(limit_id=limit_id, holders=holders)
                for limit_id, holders in zip(limit_ids, granted, strict=True)
                if holders
            ],
        )

    async def _send(self, limit_id: str, update: LimitUpdate) -> list[str]:
        """The holders of this run that have their slots of the limit now; raises ``RPCError``.

        A DAG's ``max_active_runs`` limit is sent a signal and answers by signal only: every run of
        a burst claims it at once, and updates beyond the server's in-flight bound would be refused.
        """
        if limit_kind(limit_id) is LimitKind.RUNS:
            await self._queue(limit_id, update)
            return []
        if update.capacity is None:
            # Only releases: a limit that does not exist holds nothing to release.
            try:
                return await self._client.get_workflow_handle(limit_id).execute_update(
                    CHANGE_SLOTS_UPDATE, update, result_type=list[str]
                )
            except RPCError as err:
                if err.status is not RPCStatusCode.NOT_FOUND:
                    raise
                return []
        start = WithStartWorkflowOperation(
            CONCURRENCY_LIMIT_WORKFLOW,
            LimitState(limit_id=limit_id, capacity=update.capacity, holder_check_seconds=update.holder_check_seconds),
            id=limit_id,
            task_queue=self._task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        return await self._client.execute_update_with_start_workflow(
            CHANGE_SLOTS_UPDATE, update, start_workflow_operation=start, result_type=list[str]
        )

    async def _queue(self, limit_id: str, update: LimitUpdate) -> None:
        """Hand the change to the limit's workflow as a signal, starting the workflow if it must."""
        if update.capacity is None:
            # Only releases: a limit that does not exist holds nothing to release.
            try:
                await self._client.get_workflow_handle(limit_id).signal(QUEUE_SLOT_CHANGES_SIGNAL, update)
            except RPCError as err:
                if err.status is not RPCStatusCode.NOT_FOUND:
                    raise
            return
        await self._client.start_workflow(
            CONCURRENCY_LIMIT_WORKFLOW,
            LimitState(limit_id=limit_id, capacity=update.capacity, holder_check_seconds=update.holder_check_seconds),
            id=limit_id,
            task_queue=self._task_queue,
            start_signal=QUEUE_SLOT_CHANGES_SIGNAL,
            start_signal_args=[update],
        )

    @activity.defn(name=CLOSED_WORKFLOWS_ACTIVITY)
    async def closed_workflows(self, workflow_ids: list[str]) -> list[str]:
        """The workflows among these that are no longer running (or no longer exist)."""
        statuses = await asyncio.gather(*(self._status(workflow_id) for workflow_id in workflow_ids))
        return [
            workflow_id
            for workflow_id, status in zip(workflow_ids, statuses, strict=True)
            if status != WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
        ]

    async def _status(self, workflow_id: str) -> WorkflowExecutionStatus.ValueType | None:
        try:
            description = await self._client.get_workflow_handle(workflow_id).describe()
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:
                return None
            raise
        return description.raw_description.workflow_execution_info.status
