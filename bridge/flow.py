"""Flow control without loss: caps on a DAG's runs in flight, and rates per route.

Nothing here drops a record: a record that would exceed a cap or a rate waits for room, and the
consumer pauses the partition it came from meanwhile (``waiting_partitions``), so Kafka keeps the
rest until there is room. The record's offset stays uncommitted while it waits: a bridge that
stops or dies meanwhile leaves it to be delivered again.

Which runs are in flight is learnt from Temporal, not from the ``dag-run-events`` topic: a run
that is terminated or times out publishes no run event, and after a restart the topic cannot say
which runs are still open. Temporal can: at start (and every ``resync_seconds``) visibility lists
the DAG's open runs, and each run in flight is watched with a long poll on its result, which
returns as soon as the workflow closes however it closes (following continue-as-new).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from aiokafka import TopicPartition
from aiolimiter import AsyncLimiter
from temporalio.client import Client, WorkflowFailureError
from temporalio.service import RPCError, RPCStatusCode

from bridge import metrics
from infra.backoff import Backoff
from schemas.ids import DAG_RUN_PREFIX, dag_run_workflow_id
from schemas.routes import RateLimit

log = logging.getLogger(__name__)

RESYNC_SECONDS = 30.0


class RunCap:
    """At most ``limit`` runs of one DAG open at once: those it knows of plus those reserved to start."""

    def __init__(self, dag_id: str, limit: int) -> None:
        self.dag_id = dag_id
        self.limit = limit
        self.open: set[str] = set()
        self._reserved = 0
        self._room = asyncio.Condition()

    @property
    def full(self) -> bool:
        return len(self.open) + self._reserved >= self.limit

    async def reserve(self) -> None:
        async with self._room:
            await self._room.wait_for(lambda: not self.full)
            self._reserved += 1

    async def unreserve(self) -> None:
        async with self._room:
            self._reserved -= 1
            self._room.notify_all()

    async def closed(self, workflow_id: str) -> None:
        async with self._room:
            self.open.discard(workflow_id)
            self._room.notify_all()
        metrics.RUNS_IN_FLIGHT.labels(self.dag_id).set(len(self.open))


class FlowControl:
    """Caps per DAG and rate limits per route, shared by every record the bridge handles."""

    def __init__(
        self,
        max_in_flight_runs: dict[str, int],
        rate_limits: dict[str, RateLimit],
        *,
        backoff: Backoff,
        resync_seconds: float = RESYNC_SECONDS,
    ) -> None:
        self._caps = {dag_id: RunCap(dag_id, limit) for dag_id, limit in max_in_flight_runs.items()}
        # A bucket of ``burst`` records that refills at ``messages_per_second``.
        self._rates = {
            route: AsyncLimiter(rate.burst, rate.burst / rate.messages_per_second)
            for route, rate in rate_limits.items()
        }
        self._backoff = backoff
        self._resync_seconds = resync_seconds
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._resync: asyncio.Task[None] | None = None
        self._client: Client | None = None
        self.waiting_partitions: Counter[TopicPartition] = Counter()
        self.on_change: Callable[[], None] = lambda: None

    @property
    def capped(self) -> bool:
        return bool(self._caps)

    async def start(self, client: Client) -> bool:
        """Learn every capped DAG's open runs, then keep watching them; raises what Temporal raises."""
        self._client = client
        if self._caps:
            await self._sync()
            self._resync = asyncio.create_task(self._resync_forever())
        return True

    async def stop(self) -> None:
        tasks = [*self._watchers.values(), *([self._resync] if self._resync else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._watchers.clear()

    @asynccontextmanager
    async def admitted(self, tp: TopicPartition, route: str | None, dag_id: str) -> AsyncIterator[Admission]:
        """Wait for the route's rate and the DAG's cap; the partition counts as waiting meanwhile.

        The block must report what became of the run (``Admission.opened``); a reservation left
        unreported is given back when the block ends.
        """
        limiter = self._rates.get(route) if route is not None else None
        cap = self._caps.get(dag_id)
        if limiter is not None and not limiter.has_capacity():
            async with self._waiting(tp):
                await limiter.acquire()
        elif limiter is not None:
            await limiter.acquire()
        if cap is not None:
            if cap.full:
                async with self._waiting(tp):
                    await cap.reserve()
            else:
                await cap.reserve()
        admission = Admission(self, cap)
        try:
            yield admission
        finally:
            if cap is not None:
                await cap.unreserve()

    @asynccontextmanager
    async def _waiting(self, tp: TopicPartition) -> AsyncIterator[None]:
        self.waiting_partitions[tp] += 1
        self.on_change()
        try:
            yield
        finally:
            self.waiting_partitions[tp] -= 1
            if not self.waiting_partitions[tp]:
                del self.waiting_partitions[tp]
            self.on_change()

    def _watch(self, cap: RunCap, workflow_id: str) -> None:
        if workflow_id in cap.open:
            return
        cap.open.add(workflow_id)
        metrics.RUNS_IN_FLIGHT.labels(cap.dag_id).set(len(cap.open))
        self._watchers[workflow_id] = asyncio.create_task(self._until_closed(cap, workflow_id))

    async def _until_closed(self, cap: RunCap, workflow_id: str) -> None:
        assert self._client is not None
        delays = self._backoff.delays()
        handle = self._client.get_workflow_handle(workflow_id)
        while True:
            try:
                await handle.result()
                break
            except WorkflowFailureError:
                break  # failed, cancelled, terminated or timed out: closed all the same
            except RPCError as err:
                if err.status == RPCStatusCode.NOT_FOUND:
                    break  # deleted by retention: certainly not open
                delay = next(delays)
                log.warning("cannot follow %s (%s), retrying in %.1f s", workflow_id, err, delay)
                await asyncio.sleep(delay)
        self._watchers.pop(workflow_id, None)
        await cap.closed(workflow_id)
        self.on_change()

    async def _sync(self) -> None:
        """Watch the open runs of every capped DAG, whoever started them (another bridge, the CLI)."""
        assert self._client is not None
        for cap in self._caps.values():
            query = f"WorkflowId STARTS_WITH '{DAG_RUN_PREFIX}{cap.dag_id}:' AND ExecutionStatus = 'Running'"
            async for execution in self._client.list_workflows(query):
                self._watch(cap, execution.id)

    async def _resync_forever(self) -> None:
        while True:
            await asyncio.sleep(self._resync_seconds)
            try:
                await self._sync()
            except RPCError as err:
                log.warning("cannot list open runs of capped DAGs: %s", err)


class Admission:
    """A record let through flow control; tell it the workflow its start found (started or a duplicate)."""

    def __init__(self, flow: FlowControl, cap: RunCap | None) -> None:
        self._flow = flow
        self._cap = cap

    def opened(self, dag_id: str, run_id: str) -> None:
        """The run exists now (started, or found started): it counts against the cap until it closes."""
        if self._cap is not None:
            self._flow._watch(self._cap, dag_run_workflow_id(dag_id, run_id))
