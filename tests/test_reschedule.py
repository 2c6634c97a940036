"""Reschedule-mode sensors: each poke is its own activity, the waits between them durable timers."""

from __future__ import annotations

from pathlib import Path

from temporalio.api.enums.v1 import EventType

from infra.task_logs import TaskLogStore
from tests.harness import DagRunner
from tests.history import scheduled_activities


async def test_each_poke_is_a_new_activity_of_the_same_try_and_the_waits_are_timers(
    run_dag: DagRunner, task_logs: Path
) -> None:
    handle = await run_dag.start("conformance_sensors_reschedule")
    result = await handle.result()

    assert {ti.task_id: (ti.state, ti.try_number) for ti in result.task_instances}["third_poke"] == ("success", 1)
    activity_ids = [activity_id for _, activity_id, _ in await scheduled_activities(handle)]
    assert [a for a in activity_ids if a.startswith("third_poke:")] == [
        "third_poke:-1:1",
        "third_poke:-1:1:reschedule-1",
        "third_poke:-1:1:reschedule-2",
    ]
    # A retry starts counting reschedules again.
    assert [a for a in activity_ids if a.startswith("retried:")] == [
        "retried:-1:1",
        "retried:-1:1:reschedule-1",
        "retried:-1:1:reschedule-2",
        "retried:-1:2",
        "retried:-1:2:reschedule-1",
    ]
    history = await handle.fetch_history()
    assert any(event.event_type == EventType.EVENT_TYPE_TIMER_STARTED for event in history.events)
    # The pokes of one try share its log file, one after the other; a retry gets a file of its own.
    store = TaskLogStore(str(task_logs))
    assert store.attempts(result.dag_id, result.run_id, "retried", -1) == [1, 2]
    log = store.read(result.dag_id, result.run_id, "third_poke", -1, 1).decode()
    headers = [line for line in log.splitlines() if line.startswith("--- dagbridge: third_poke try 1")]
    assert [header.split(" (")[0] for header in headers] == [
        "--- dagbridge: third_poke try 1",
        "--- dagbridge: third_poke try 1, poke 2",
        "--- dagbridge: third_poke try 1, poke 3",
    ]
