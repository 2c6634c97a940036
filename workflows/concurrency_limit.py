"""The workflow that owns one concurrency limit (a pool, a task's or a DAG's limit) across all runs.

Temporal is its only store: holders and waiters live in the workflow and are carried across
continue-as-new. DAG runs send their changes one of two ways, both through a with-start call so
the first request creates the limit:

- ``change_slots`` updates, answered with the slots granted at once (pools and task limits: the
  claims of running runs, which start their tries as soon as the answer comes);
- ``queue_slot_changes`` signals, answered by signal only (a DAG's ``max_active_runs``: every run
  of a burst claims it at once, and a server bounds the updates in flight per workflow, 10 by
  default, so a burst of updates is refused exactly when it matters; signals queue in history
  and sending one never waits for a workflow task of the limit).

Slots granted later, when others release them, go to the waiting DAG run as ``slots_granted``
signals, whichever way it asked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from schemas.limits import (
        UNLIMITED,
        Holding,
        LimitState,
        LimitUpdate,
        SlotGrant,
        Waiter,
    )
    from schemas.names import (
        CHANGE_SLOTS_UPDATE,
        CLOSED_WORKFLOWS_ACTIVITY,
        CONCURRENCY_LIMIT_WORKFLOW,
        QUEUE_SLOT_CHANGES_SIGNAL,
        SLOTS_GRANTED_SIGNAL,
    )


def grants(waiting: Iterable[Waiter], free: int | None) -> list[Waiter]:
    """Who gets slots now, Airflow's way: highest priority_weight first, then arrival; a waiter
    that needs more than is free is passed over and smaller, lower-priority ones may still fit.

    ``free`` is None when the limit is unlimited.
    """
    granted = []
    for waiter in sorted(waiting, key=lambda w: (-w.priority_weight, w.arrival)):
        if free is None or waiter.slots <= free:
            granted.append(waiter)
            if free is not None:
                free -= waiter.slots
    return granted


class SlotBook:
    """Holders and waiters of one limit; pure bookkeeping, the workflow does the messaging."""

    def __init__(self, state: LimitState) -> None:
        self.limit_id = state.limit_id
        self.capacity = state.capacity
        self.holder_check_seconds = state.holder_check_seconds
        self.max_history_events = state.max_history_events
        self.holders = {holding.holder: holding for holding in state.holders}
        self.waiting = {waiter.holder: waiter for waiter in state.waiting}
        self.arrivals = state.arrivals

    def state(self) -> LimitState:
        return LimitState(
            limit_id=self.limit_id,
            capacity=self.capacity,
            holder_check_seconds=self.holder_check_seconds,
            holders=list(self.holders.values()),
            waiting=list(self.waiting.values()),
            arrivals=self.arrivals,
            max_history_events=self.max_history_events,
        )

    def apply(self, update: LimitUpdate) -> None:
        # The latest configuration wins: a pool resized in DAGBRIDGE_POOLS takes effect on next use.
        if update.capacity is not None:
            self.capacity = update.capacity
        self.holder_check_seconds = update.holder_check_seconds
        self.release(update.release)
        for request in update.acquire:
            if request.holder in self.holders or request.holder in self.waiting:
                continue  # a retried request: the first one stands
            self.arrivals += 1
            self.waiting[request.holder] = Waiter(**request.model_dump(), arrival=self.arrivals)

    def release(self, holders: Iterable[str]) -> None:
        for holder in holders:
            self.holders.pop(holder, None)
            self.waiting.pop(holder, None)

    def release_requesters(self, requesters: set[str]) -> None:
        self.release(
            [h.holder for h in self.holders.values() if h.requester in requesters]
            + [w.holder for w in self.waiting.values() if w.requester in requesters]
        )

    def grant(self) -> list[Waiter]:
        used = sum(holding.slots for holding in self.holders.values())
        free = None if self.capacity == UNLIMITED else max(self.capacity - used, 0)
        granted = grants(self.waiting.values(), free)
        for waiter in granted:
            del self.waiting[waiter.holder]
            self.holders[waiter.holder] = Holding(holder=waiter.holder, requester=waiter.requester, slots=waiter.slots)
        return granted

    def requesters(self) -> list[str]:
        return sorted({h.requester for h in self.holders.values()} | {w.requester for w in self.waiting.values()})


@workflow.defn(name=CONCURRENCY_LIMIT_WORKFLOW, sandboxed=False)
class ConcurrencyLimitWorkflow:
    """One limit, shared by every DAG run on every worker.

    Unsandboxed like the DAG-run workflow, and for the same reason the sandbox would re-import
    pydantic per run; this module only does bookkeeping and reads no clock or randomness.
    """

    @workflow.init
    def __init__(self, state: LimitState) -> None:
        # Built here, not in run: the update that starts the workflow is handled before run begins.
        self._book = SlotBook(state)
        # Grants to send, per requester, in the order they were decided.
        self._to_signal: dict[str, list[str]] = {}
        self._checking_holders = False

    @workflow.update(name=CHANGE_SLOTS_UPDATE)
    def change_slots(self, update: LimitUpdate) -> list[str]:
        """Apply a run's releases and requests; answer which of its holders have their slots now,
        also earlier waiters its releases made room for.

        The answer saves the requester a round trip; slots freed here for other runs go to them
        by signal. A holder asked for again (a retried request) is answered the same way.
        """
        self._book.apply(update)
        granted = self._book.grant()
        self._queue_grants(waiter for waiter in granted if waiter.requester != update.requester)
        answer = {waiter.holder for waiter in granted if waiter.requester == update.requester}
        answer.update(request.holder for request in update.acquire if request.holder in self._book.holders)
        return sorted(answer)

    @workflow.signal(name=QUEUE_SLOT_CHANGES_SIGNAL)
    def queue_slot_changes(self, update: LimitUpdate) -> None:
        """Apply a run's releases and requests; every grant, its own included, goes out by signal.

        A holder asked for again while it holds (a retried request, or the claim of a DAG run's
        next workflow after continue-as-new) is granted again: the first grant may have gone to a
        workflow that no longer listens.
        """
        held_before = {request.holder for request in update.acquire if request.holder in self._book.holders}
        self._book.apply(update)
        self._queue_grants(self._book.grant())
        for holder in sorted(held_before):
            self._queue_grant(update.requester, holder)

    def _queue_grants(self, granted: Iterable[Waiter]) -> None:
        for waiter in granted:
            self._queue_grant(waiter.requester, waiter.holder)

    def _queue_grant(self, requester: str, holder: str) -> None:
        holders = self._to_signal.setdefault(requester, [])
        if holder not in holders:
            holders.append(holder)

    @workflow.run
    async def run(self, state: LimitState) -> None:
        reclaiming = asyncio.create_task(self._reclaim_dead_holders(self._book))
        while True:
            await workflow.wait_condition(lambda: bool(self._to_signal) or self._history_is_long(self._book))
            await self._signal_grants()
            if self._history_is_long(self._book):
                # Updates that arrived meanwhile must be in the carried state, their grants
                # sent, and no holder check may be halfway through.
                await workflow.wait_condition(lambda: workflow.all_handlers_finished() and not self._checking_holders)
                if not self._to_signal:
                    reclaiming.cancel()
                    workflow.continue_as_new(self._book.state())

    async def _signal_grants(self) -> None:
        by_requester, self._to_signal = self._to_signal, {}
        requesters = sorted(by_requester)
        outcomes = await asyncio.gather(
            *(
                workflow.get_external_workflow_handle(requester).signal(
                    SLOTS_GRANTED_SIGNAL, SlotGrant(limit_id=self._book.limit_id, holders=by_requester[requester])
                )
                for requester in requesters
            ),
            return_exceptions=True,
        )
        # A requester that cannot be signalled is closed (terminated, most likely): its slots are free.
        gone = {
            requester
            for requester, outcome in zip(requesters, outcomes, strict=True)
            if isinstance(outcome, FailureError)
        }
        for requester, outcome in zip(requesters, outcomes, strict=True):
            if isinstance(outcome, BaseException) and requester not in gone:
                raise outcome
        if gone:
            self._release_requesters(gone)

    def _release_requesters(self, requesters: set[str]) -> None:
        self._book.release_requesters(requesters)
        self._queue_grants(self._book.grant())

    async def _reclaim_dead_holders(self, book: SlotBook) -> None:
        """While anyone waits, look now and then for holders whose run ended without releasing
        (a terminated workflow runs no code). No timer at all while nobody waits."""
        while True:
            await workflow.wait_condition(lambda: bool(book.waiting))
            await workflow.sleep(timedelta(seconds=book.holder_check_seconds))
            if not book.waiting:
                continue
            self._checking_holders = True
            try:
                closed = await workflow.execute_activity(
                    CLOSED_WORKFLOWS_ACTIVITY,
                    book.requesters(),
                    result_type=list[str],
                    start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10)),
                )
            finally:
                self._checking_holders = False
            if closed:
                self._release_requesters(set(closed))

    @staticmethod
    def _history_is_long(book: SlotBook) -> bool:
        info = workflow.info()
        return info.is_continue_as_new_suggested() or info.get_current_history_length() > book.max_history_events
