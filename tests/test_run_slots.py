"""A DAG run's side of concurrency limits: what it admits, claims, starts and gives back."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from schemas.ids import LimitKind, TryId, limit_workflow_id
from schemas.limits import SlotGrant, SlotRefusal, SlotRelease
from workflows.ready_tasks import ReadyTask
from workflows.slots import RunSlots

RUN = "dagrun:etl:manual_1"
POOL = limit_workflow_id(LimitKind.POOL, "default_pool")


def operator(
    *, pool: str = "default_pool", per_dag: int | None = None, per_run: int | None = None, slots: int = 1
) -> SimpleNamespace:
    return SimpleNamespace(
        pool=pool, pool_slots=slots, max_active_tis_per_dag=per_dag, max_active_tis_per_dagrun=per_run
    )


def dag(max_active_tasks: int = 16, **operators: SimpleNamespace) -> Any:
    return SimpleNamespace(dag_id="etl", max_active_tasks=max_active_tasks, get_task=lambda task_id: operators[task_id])


def ready(task_id: str, map_index: int = -1, *, try_number: int = 1, priority_weight: int = 1) -> ReadyTask:
    return ReadyTask(
        task_id=task_id,
        map_index=map_index,
        try_number=try_number,
        max_tries=0,
        queue="default",
        priority_weight=priority_weight,
    )


def holder(task_id: str, map_index: int = -1, try_number: int = 1) -> str:
    return TryId(task_id, map_index, try_number).qualified(RUN)


def test_admitted_tasks_claim_their_pool_and_start_once_granted() -> None:
    slots = RunSlots(RUN)
    slots.admit([ready("a"), ready("b")], dag(a=operator(), b=operator()))

    release, acquire = slots.changes()
    assert release == []
    assert [(claim.limit_id, claim.holder) for claim in acquire] == [(POOL, holder("a")), (POOL, holder("b"))]
    assert slots.startable() == []

    slots.on_grant(SlotGrant(limit_id=POOL, holders=[holder("b")]))
    assert slots.has_news
    assert [task.task_id for task, _ in slots.startable()] == ["b"]
    assert slots.startable() == [], "a task is started once"
    assert slots.waiting


def test_a_task_limit_is_claimed_before_the_pool_one_after_the_other() -> None:
    slots = RunSlots(RUN)
    slots.admit([ready("a")], dag(a=operator(per_dag=1)))
    task_limit = limit_workflow_id(LimitKind.TASK, "etl.a")

    _, first = slots.changes()
    assert [claim.limit_id for claim in first] == [task_limit]
    assert slots.changes() == ([], []), "the pool is claimed only once the task limit granted"

    slots.on_grant(SlotGrant(limit_id=task_limit, holders=[holder("a")]))
    _, second = slots.changes()
    assert [claim.limit_id for claim in second] == [POOL]


def test_the_runs_own_limits_admit_no_more_than_they_allow() -> None:
    slots = RunSlots(RUN)
    scheduled = [ready("m", i) for i in range(3)] + [ready("x"), ready("y")]
    slots.admit(scheduled, dag(max_active_tasks=3, m=operator(per_run=2), x=operator(), y=operator()))

    _, acquire = slots.changes()
    assert [claim.holder for claim in acquire] == [holder("m", 0), holder("m", 1), holder("x")]


def test_a_refused_claim_starts_the_task_with_the_reason() -> None:
    slots = RunSlots(RUN)
    slots.admit([ready("a")], dag(a=operator(pool="nowhere")))
    _, (claim,) = slots.changes()

    slots.on_refusals([SlotRefusal(holder=claim.holder, limit_id=claim.limit_id, reason="pool 'nowhere' is missing")])

    assert [(task.task_id, reason) for task, reason in slots.startable()] == [("a", "pool 'nowhere' is missing")]


def test_started_tasks_go_by_priority_weight() -> None:
    slots = RunSlots(RUN)
    slots.admit(
        [ready("low", priority_weight=1), ready("high", priority_weight=9)], dag(low=operator(), high=operator())
    )
    slots.changes()
    slots.on_grant(SlotGrant(limit_id=POOL, holders=[holder("low"), holder("high")]))

    assert [task.task_id for task, _ in slots.startable()] == ["high", "low"]


def test_a_finished_try_gives_back_what_it_held() -> None:
    slots = RunSlots(RUN)
    slots.admit([ready("a")], dag(a=operator()))
    slots.changes()
    slots.on_grant(SlotGrant(limit_id=POOL, holders=[holder("a")]))
    slots.startable()

    slots.finish("a", -1)

    assert slots.changes() == ([SlotRelease(limit_id=POOL, holders=[holder("a")])], [])
    assert slots.releases() == [], "given back once"
    assert not slots.waiting


def test_a_retry_claims_under_a_new_holder() -> None:
    slots = RunSlots(RUN)
    slots.admit([ready("a", try_number=2)], dag(a=operator()))
    _, (claim,) = slots.changes()
    assert claim.holder == holder("a", try_number=2)


def test_everything_claimed_is_given_back_when_the_run_ends() -> None:
    slots = RunSlots(RUN)
    slots.claim_run_slot("etl", 1)
    slots.admit([ready("a"), ready("b")], dag(a=operator(), b=operator()))
    slots.changes()

    runs = limit_workflow_id(LimitKind.RUNS, "etl")
    assert slots.everything() == [
        SlotRelease(limit_id=POOL, holders=[holder("a"), holder("b")]),
        SlotRelease(limit_id=runs, holders=[RUN]),
    ]


def test_the_run_slot_is_held_once_granted() -> None:
    slots = RunSlots(RUN)
    slots.claim_run_slot("etl", 1)
    runs = limit_workflow_id(LimitKind.RUNS, "etl")
    _, (claim,) = slots.changes()
    assert (claim.limit_id, claim.capacity, slots.run_slot_held) == (runs, 1, False)

    slots.on_grant(SlotGrant(limit_id=runs, holders=[RUN]))
    assert slots.run_slot_held


def test_a_grant_that_came_before_the_claim_is_found_by_it() -> None:
    """After continue-as-new, the limit may answer the previous workflow's claim first."""
    slots = RunSlots(RUN)
    runs = limit_workflow_id(LimitKind.RUNS, "etl")
    slots.on_grant(SlotGrant(limit_id=runs, holders=[RUN]))
    slots.on_grant(SlotGrant(limit_id=POOL, holders=[holder("a")]))

    slots.claim_run_slot("etl", 1)
    assert slots.run_slot_held
    slots.admit([ready("a")], dag(a=operator()))
    _, acquire = slots.changes()

    assert [claim.limit_id for claim in acquire] == [runs], "the task's pool claim was already granted"
    assert [task.task_id for task, _ in slots.startable()] == ["a"]
    assert POOL in {release.limit_id for release in slots.everything()}


def test_a_duplicate_grant_changes_nothing() -> None:
    slots = RunSlots(RUN)
    slots.admit([ready("a")], dag(a=operator(per_dag=1)))
    task_limit = limit_workflow_id(LimitKind.TASK, "etl.a")
    slots.changes()
    grant = SlotGrant(limit_id=task_limit, holders=[holder("a")])
    slots.on_grant(grant)
    slots.changes()
    slots.on_grant(grant)

    assert slots.startable() == [], "the pool's slot is still missing"
