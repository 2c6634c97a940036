"""Held inputs are read once per task and revision on a worker, and a failed read is not kept."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime

import pytest

from activities.held_inputs import HeldInputs
from schemas.runs import DagRunContext, TaskTryRequest, TryInputs, XComEntry

START = datetime(2025, 3, 1, tzinfo=UTC)
LIST = XComEntry(task_id="items", key="return_value", value=list(range(10)))


class Workflow:
    """Answers ``try_inputs`` as a workflow would, counting what it was asked; a test may hold answers."""

    def __init__(self) -> None:
        self.asked: Counter[tuple[str, str, str]] = Counter()
        self.held = asyncio.Event()
        self.held.set()
        self.failures = 0

    async def read(self, workflow_id: str, run_id: str, task_id: str) -> TryInputs:
        self.asked[(workflow_id, run_id, task_id)] += 1
        await self.held.wait()
        if self.failures:
            self.failures -= 1
            raise RuntimeError("workflow not reachable")
        return TryInputs(conf={"size": "large"}, upstream_xcoms=[LIST])


def try_request(map_index: int, revision: int = 3, task_id: str = "double", **fields: object) -> TaskTryRequest:
    run = DagRunContext(
        dag_id="d",
        run_id="r",
        run_type="manual",
        logical_date=START,
        data_interval_start=START,
        data_interval_end=START,
        run_after=START,
        start_date=START,
    )
    return TaskTryRequest.model_validate(
        {
            "dag_run": run,
            "task_id": task_id,
            "map_index": map_index,
            "try_number": 1,
            "max_tries": 0,
            "inputs_held_by_workflow": True,
            "held_inputs_revision": revision,
            **fields,
        }
    )


async def test_tries_of_one_task_and_revision_share_one_read_also_when_they_start_together() -> None:
    workflow = Workflow()
    held = HeldInputs(workflow.read)
    workflow.held.clear()
    first = [asyncio.ensure_future(held.complete(try_request(i), "w", "run-1")) for i in range(5)]
    await asyncio.sleep(0)
    workflow.held.set()
    completed = await asyncio.gather(*first)
    completed.append(await held.complete(try_request(5), "w", "run-1"))

    assert workflow.asked == {("w", "run-1", "double"): 1}
    assert [(c.map_index, c.dag_run.conf, c.upstream_xcoms) for c in completed] == [
        (i, {"size": "large"}, [LIST]) for i in range(6)
    ]


async def test_a_new_revision_another_task_or_another_workflow_run_reads_again() -> None:
    workflow = Workflow()
    held = HeldInputs(workflow.read)
    await held.complete(try_request(0), "w", "run-1")
    await held.complete(try_request(1, revision=4), "w", "run-1")
    await held.complete(try_request(0, task_id="total"), "w", "run-1")
    await held.complete(try_request(0), "w", "run-2")

    assert workflow.asked == {("w", "run-1", "double"): 2, ("w", "run-1", "total"): 1, ("w", "run-2", "double"): 1}


async def test_a_failed_read_fails_its_tries_and_the_next_try_reads_again() -> None:
    workflow = Workflow()
    workflow.failures = 1
    held = HeldInputs(workflow.read)
    with pytest.raises(RuntimeError, match="not reachable"):
        await held.complete(try_request(0), "w", "run-1")
    completed = await held.complete(try_request(1), "w", "run-1")

    assert workflow.asked == {("w", "run-1", "double"): 2}
    assert completed.upstream_xcoms == [LIST]


async def test_a_try_cancelled_while_waiting_leaves_the_read_to_the_others() -> None:
    workflow = Workflow()
    held = HeldInputs(workflow.read)
    workflow.held.clear()
    cancelled = asyncio.ensure_future(held.complete(try_request(0), "w", "run-1"))
    waiting = asyncio.ensure_future(held.complete(try_request(1), "w", "run-1"))
    await asyncio.sleep(0)
    cancelled.cancel()
    workflow.held.set()

    assert (await waiting).upstream_xcoms == [LIST]
    assert cancelled.cancelled()
    assert workflow.asked == {("w", "run-1", "double"): 1}


async def test_only_the_latest_answers_are_kept() -> None:
    workflow = Workflow()
    held = HeldInputs(workflow.read, kept=2)
    for task_id in ("a", "b", "c", "a"):
        await held.complete(try_request(0, task_id=task_id), "w", "run-1")

    assert workflow.asked == {("w", "run-1", "a"): 2, ("w", "run-1", "b"): 1, ("w", "run-1", "c"): 1}


async def test_what_travelled_with_the_try_comes_after_what_was_held() -> None:
    own = XComEntry(task_id="double", map_index=0, key="pushed_before_deferring", value=1)
    held = HeldInputs(Workflow().read)
    completed = await held.complete(try_request(0, upstream_xcoms=[own], next_method="execute_complete"), "w", "r")

    assert completed.upstream_xcoms == [LIST, own]
