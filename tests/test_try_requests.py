"""What a try's input lists of its run, and when held inputs count as changed."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.runs import TaskState, TaskTryResult, XComEntry
from workflows.ready_tasks import ReadyTask
from workflows.try_requests import LISTED_TASK_INSTANCES, listed_instances
from workflows.xcom_store import XComStore

START = datetime(2025, 3, 1, tzinfo=UTC)


def ready(task_id: str, map_index: int) -> ReadyTask:
    return ReadyTask(task_id=task_id, map_index=map_index, try_number=1, max_tries=0, queue="q", priority_weight=1)


def test_a_wide_task_lists_only_the_trys_own_instance_and_a_narrow_one_lists_all() -> None:
    wide = [(i, "success" if i % 2 else None) for i in range(LISTED_TASK_INSTANCES * 3)]
    narrow = [(i, "running") for i in range(3)]

    assert listed_instances("double", wide, len(wide), ready("double", 101)) == [(101, "success")]
    assert listed_instances("double", wide, len(wide), ready("double", 0)) == [(0, None)]
    # Of a wide upstream task, a try sees the count only.
    assert listed_instances("double", wide, len(wide), ready("total", -1)) == []
    assert listed_instances("items", narrow, 3, ready("double", 101)) == narrow
    # Still expanding: counted as wide as it will be, and its instances not created yet are not listed.
    assert listed_instances("double", wide[:10], 10_000, ready("double", 500)) == []


def result(task_id: str, map_index: int, value: int) -> TaskTryResult:
    return TaskTryResult(
        task_id=task_id,
        map_index=map_index,
        try_number=1,
        state=TaskState.SUCCESS,
        start_date=START,
        end_date=START,
        xcoms=[XComEntry(task_id=task_id, map_index=map_index, key="return_value", value=value)],
    )


def test_the_revision_of_held_inputs_changes_only_with_results_of_those_tasks() -> None:
    store = XComStore()
    store.store(result("items", -1, 1))
    before = store.revision({"items"})
    store.store(result("double", 0, 2))

    assert store.revision({"items"}) == before
    assert store.revision({"items", "double"}) != before
    # A retried try's result replaces the earlier one's XComs: that is a change too.
    store.store(result("items", -1, 1))
    assert store.revision({"items"}) != before
