"""The conf and upstream XComs a workflow holds back from its tries' inputs, read once per worker.

Every try of a task mapped N wide reads the same upstream XComs (Airflow's runner pulls the whole
upstream list and picks its own item). Asked for by every try, they would cross from the
workflow to the worker N times, N queries each returning all of it: work that grows with the
square of the width. Here the tries of one task that share a ``held_inputs_revision`` share one
query, and its answer is kept for the next tries that come to this worker.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from temporalio import activity

from schemas.names import TRY_INPUTS_QUERY
from schemas.runs import TaskTryRequest, TryInputs

# Answers kept per worker process: the tasks whose tries are in flight at once, with room to spare.
KEPT_ANSWERS = 16

# workflow id, workflow run id, task id, revision of the held inputs
_Key = tuple[str, str, str, int]
ReadInputs = Callable[[str, str, str], Awaitable[TryInputs]]


async def query_try_inputs(workflow_id: str, run_id: str, task_id: str) -> TryInputs:
    """The held inputs of a task's tries, from the workflow that handed them out (call from an activity)."""
    handle = activity.client().get_workflow_handle(workflow_id, run_id=run_id)
    return await handle.query(TRY_INPUTS_QUERY, task_id, result_type=TryInputs)


class HeldInputs:
    """Reads held inputs with ``read`` (the workflow's ``try_inputs`` query), once per version."""

    def __init__(self, read: ReadInputs = query_try_inputs, kept: int = KEPT_ANSWERS) -> None:
        self._read = read
        self._kept = kept
        self._answers: OrderedDict[_Key, asyncio.Task[TryInputs]] = OrderedDict()

    async def complete(self, request: TaskTryRequest, workflow_id: str, run_id: str) -> TaskTryRequest:
        """The request with the conf and upstream XComs its workflow (``run_id``) held back.

        Raises what reading them raised (the workflow is gone, the server is unreachable); the
        next try that needs them reads them again.
        """
        key = (workflow_id, run_id, request.task_id, request.held_inputs_revision)
        answer = self._answers.get(key)
        if answer is None or (answer.done() and (answer.cancelled() or answer.exception() is not None)):
            # A task of its own: a try cancelled while it waits does not cancel the others' answer.
            answer = asyncio.create_task(self._read(workflow_id, run_id, request.task_id))
            self._answers[key] = answer
            while len(self._answers) > self._kept:
                self._answers.popitem(last=False)
        self._answers.move_to_end(key)
        inputs = await asyncio.shield(answer)
        return request.model_copy(
            update={
                "dag_run": request.dag_run.model_copy(update={"conf": inputs.conf}),
                # What travelled with the try itself (a resumed deferral's own XComs) comes after.
                "upstream_xcoms": inputs.upstream_xcoms + request.upstream_xcoms,
            }
        )
