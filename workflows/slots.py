"""The DAG run's side of concurrency limits: what it may start, what it holds, what it waits for.

The run's own limits (the DAG's ``max_active_tasks``, a task's ``max_active_tis_per_dagrun``) are
decided here; shared ones (pools, ``max_active_tis_per_dag``, ``max_active_runs``) are claimed from
their limit workflows. A task's claims are made one after the other in a fixed order (task limit,
then pool), so two runs can never each hold what the other waits for.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from schemas.ids import LimitKind, TryId
from schemas.limits import SlotClaim, SlotGrant, SlotRefusal, SlotRelease
from workflows.ready_tasks import ReadyTask

TaskKey = tuple[str, int]


@dataclass
class _TaskSlots:
    task: ReadyTask
    claims: list[SlotClaim]
    granted: int = 0  # claims[:granted] are held
    requested: bool = False  # claims[granted] was sent and awaits its grant
    started: bool = False
    refusal: str | None = None


class RunSlots:
    def __init__(self, workflow_id: str) -> None:
        self._workflow_id = workflow_id
        self._tasks: dict[TaskKey, _TaskSlots] = {}
        self._by_holder: dict[str, TaskKey] = {}
        self._to_release: dict[str, set[str]] = defaultdict(set)
        self._to_acquire: list[SlotClaim] = []
        # Every holder this run ever claimed, per limit: what it gives back when it ends, however.
        self._claimed: dict[str, set[str]] = defaultdict(set)
        self._run_claim: SlotClaim | None = None
        # Grants that came before this workflow made the claim (a claim of an earlier workflow of
        # the run, before it continued as new): a claim finds its grant here when it is made.
        self._grants_before_claims: set[tuple[str, str]] = set()
        self.run_slot_held = False
        self.has_news = False
        # The run's own weight (from whoever started it), added to each task's: a run triggered
        # with a higher priority goes first wherever its tasks wait for slots with other runs'.
        self.run_priority_weight = 0

    def claim_run_slot(self, dag_id: str, max_active_runs: int) -> None:
        self._run_claim = SlotClaim(
            kind=LimitKind.RUNS,
            name=dag_id,
            holder=self._workflow_id,
            capacity=max_active_runs,
            priority_weight=self.run_priority_weight,
        )
        self._to_acquire.append(self._run_claim)
        self.run_slot_held = (self._run_claim.limit_id, self._run_claim.holder) in self._grants_before_claims

    def admit(self, scheduled: list[ReadyTask], dag: Any) -> None:
        """Take scheduled tasks in, in Airflow's order, as far as the run's own limits allow.

        A task counts against them from here until its try ends, also while it waits for shared
        slots: otherwise the run could be granted more slots than it may use.
        """
        per_task = Counter(task_id for task_id, _ in self._tasks)
        for task in scheduled:
            key = (task.task_id, task.map_index)
            if key in self._tasks:
                continue
            if len(self._tasks) >= dag.max_active_tasks:
                return
            operator = dag.get_task(task.task_id)
            per_run = operator.max_active_tis_per_dagrun
            if per_run is not None and per_task[task.task_id] >= per_run:
                continue
            per_task[task.task_id] += 1
            self._tasks[key] = _TaskSlots(task, self._claims(dag.dag_id, task, operator))
            self._by_holder[self._holder(task)] = key

    def _claims(self, dag_id: str, task: ReadyTask, operator: Any) -> list[SlotClaim]:
        holder = self._holder(task)
        claims = []
        if operator.max_active_tis_per_dag is not None:
            claims.append(
                SlotClaim(
                    kind=LimitKind.TASK,
                    name=f"{dag_id}.{task.task_id}",
                    holder=holder,
                    priority_weight=task.priority_weight + self.run_priority_weight,
                    capacity=operator.max_active_tis_per_dag,
                )
            )
        claims.append(
            SlotClaim(
                kind=LimitKind.POOL,
                name=operator.pool,
                holder=holder,
                slots=operator.pool_slots,
                priority_weight=task.priority_weight + self.run_priority_weight,
            )
        )
        return claims

    def _holder(self, task: ReadyTask) -> str:
        # Try number included: a retry's claim is a new one even if the old release is still in flight.
        return TryId(task.task_id, task.map_index, task.try_number).qualified(self._workflow_id)

    def changes(self) -> tuple[list[SlotRelease], list[SlotClaim]]:
        """What to send now: releases, then each admitted task's next claim."""
        for slots in self._tasks.values():
            waits = not slots.started and not slots.requested and slots.refusal is None
            while waits and slots.granted < len(slots.claims):
                claim = slots.claims[slots.granted]
                if (claim.limit_id, claim.holder) in self._grants_before_claims:
                    self._grants_before_claims.discard((claim.limit_id, claim.holder))
                    self._claimed[claim.limit_id].add(claim.holder)
                    slots.granted += 1
                    continue
                slots.requested = True
                self._to_acquire.append(claim)
                break
        acquire, self._to_acquire = self._to_acquire, []
        for claim in acquire:
            self._claimed[claim.limit_id].add(claim.holder)
        return self.releases(), acquire

    def releases(self) -> list[SlotRelease]:
        """The slots of tries that ended, to give back now."""
        release = [
            SlotRelease(limit_id=limit, holders=sorted(holders)) for limit, holders in sorted(self._to_release.items())
        ]
        self._to_release.clear()
        return release

    def everything(self) -> list[SlotRelease]:
        """Every slot this run held or waited for: released when it ends, whatever the reason."""
        self._to_release.clear()
        self._to_acquire.clear()
        return [
            SlotRelease(limit_id=limit, holders=sorted(holders)) for limit, holders in sorted(self._claimed.items())
        ]

    def on_grant(self, grant: SlotGrant) -> None:
        self.has_news = True
        for holder in grant.holders:
            if self._run_claim is not None and (grant.limit_id, holder) == (
                self._run_claim.limit_id,
                self._run_claim.holder,
            ):
                self.run_slot_held = True
                continue
            key = self._by_holder.get(holder)
            slots = self._tasks.get(key) if key is not None else None
            if slots is not None and slots.requested and slots.claims[slots.granted].limit_id == grant.limit_id:
                slots.granted += 1
                slots.requested = False
            elif slots is None:
                self._grants_before_claims.add((grant.limit_id, holder))
            # Otherwise a duplicate grant for a claim this run no longer waits for: it changes nothing.

    def on_refusals(self, refusals: list[SlotRefusal]) -> None:
        for refusal in refusals:
            self._tasks[self._by_holder[refusal.holder]].refusal = refusal.reason

    def startable(self) -> list[tuple[ReadyTask, str | None]]:
        """Tasks that hold all their slots, or will never get them (with why): start their tries."""
        ready = []
        for slots in self._tasks.values():
            if not slots.started and (slots.granted == len(slots.claims) or slots.refusal is not None):
                slots.started = True
                ready.append((slots.task, slots.refusal))
        return sorted(ready, key=lambda item: (-item[0].priority_weight, item[0].task_id, item[0].map_index))

    def finish(self, task_id: str, map_index: int) -> None:
        """The task's try ended: its slots go back with the next changes."""
        slots = self._tasks.pop((task_id, map_index))
        for claim in slots.claims[: slots.granted]:
            self._to_release[claim.limit_id].add(claim.holder)
        self._by_holder.pop(self._holder(slots.task))

    @property
    def waiting(self) -> bool:
        return any(not slots.started for slots in self._tasks.values())
