"""How a DAG run shows in the Temporal UI: its state as a search attribute, its task grid as the
workflow's current details, and a readable summary on each task-try activity.

Upserting a search attribute is a workflow command, recorded in history: callers do it at fixed
points of the run (it holds its run slot, it ended) so a replay issues the same commands.
Current details and summaries are metadata the UI reads; they cost no history events.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow

from schemas import run_attributes
from schemas.runs import TaskTryRequest

# Airflow's grid, top to bottom: what most needs a look first.
_STATE_ORDER = [
    "failed",
    "upstream_failed",
    "up_for_retry",
    "up_for_reschedule",
    "running",
    "queued",
    "scheduled",
    "deferred",
    "success",
    "skipped",
    "removed",
    None,
]
# Beyond this many tasks the grid lists the first ones and counts the rest: the details must stay small.
GRID_TASKS = 50
# Runs of this many task instances update their grid at most once per interval (of workflow time).
LARGE_RUN_SIZE = 1_000
LARGE_RUN_INTERVAL = timedelta(seconds=1)

TaskInstanceStates = dict[str, list[tuple[int, str | None]]]


# Workflows that started before runs had a DagRunState never upserted it: their replays must not either.
STATE_ATTRIBUTE_PATCH = "dag-run-state-search-attribute"


def mark_state(state: str) -> None:
    """Set the run's DagRunState search attribute (a command: call only from deterministic points)."""
    if workflow.patched(STATE_ATTRIBUTE_PATCH):
        workflow.upsert_search_attributes([run_attributes.RUN_STATE.value_set(state)])


def try_summary(request: TaskTryRequest) -> str:
    """The activity's one-line summary in the UI: ``transform[3] try 2`` (``, poke 3`` for a rescheduled sensor)."""
    poke = f", poke {request.reschedule_count + 1}" if request.reschedule_count else ""
    return f"{request.label} try {request.try_number}{poke}"


def _state_cell(states: Counter[str | None]) -> str:
    ordered = sorted(states.items(), key=lambda item: _STATE_ORDER.index(item[0]) if item[0] in _STATE_ORDER else 99)
    if len(states) == 1 and sum(states.values()) == 1:
        return str(ordered[0][0] or "none")
    return ", ".join(f"{count} {state or 'none'}" for state, count in ordered)


def _state_name(state: str | None) -> str | None:
    # Airflow's states are str enums; their f-string form is not always the bare value.
    return None if state is None else str(getattr(state, "value", state))


def task_grid(
    run_state: str, task_instance_states: dict[str, list[tuple[int, str | None]]], task_order: list[str]
) -> str:
    """The run's state over its tasks, one line each in ``task_order``, a mapped task's instances counted by state.

    A code block, not a markdown table: the UI draws tables without borders or padding, and the
    columns of a code block line up as ``dagbridge status`` prints them.
    """
    order = {task_id: index for index, task_id in enumerate(task_order)}
    tasks = sorted(task_instance_states.items(), key=lambda item: order.get(item[0], len(order)))
    rows = []
    for task_id, instances in tasks[:GRID_TASKS]:
        mapped = any(map_index >= 0 for map_index, _ in instances)
        label = f"{task_id} [{len(instances)}]" if mapped else task_id
        rows.append((label, _state_cell(Counter(_state_name(state) for _, state in instances))))
    if len(tasks) > GRID_TASKS:
        rows.append((f"… {len(tasks) - GRID_TASKS} more tasks", ""))
    width = max([len("task"), *(len(label) for label, _ in rows)])
    lines = [f"{'task':<{width}}  state", *(f"{label:<{width}}  {state}".rstrip() for label, state in rows)]
    return "\n".join([f"**DAG run {run_state}**", "", "```", *lines, "```"])


def show_task_grid(
    run_state: str, task_instance_states: dict[str, list[tuple[int, str | None]]], task_order: list[str]
) -> None:
    workflow.set_current_details(task_grid(run_state, task_instance_states, task_order))


def show_run_failed(error: str) -> None:
    """Head the grid shown so far with the run's failure and why: the run ended without a last pass."""
    shown = workflow.get_current_details()
    grid = shown.split("\n", 1)[1] if shown.startswith("**DAG run ") and "\n" in shown else ""
    workflow.set_current_details(f"**DAG run failed**: {error}\n{grid}".rstrip("\n"))


class TaskGridView:
    """Shows a run's task grid after each scheduling step, a large run's at most once a second.

    Building the grid reads every task instance: a run of 10,000 would pay that once per pass.
    The details are metadata, so how often they change costs no history and no determinism.
    """

    def __init__(self) -> None:
        self._shown_at: datetime | None = None

    def show(
        self,
        run_state: str,
        run_size: int,
        states: Callable[[], TaskInstanceStates],
        task_order: Callable[[], list[str]],
    ) -> None:
        """``states`` and ``task_order``: read only when the grid is shown."""
        now = workflow.now()
        if run_size >= LARGE_RUN_SIZE and self._shown_at is not None and now - self._shown_at < LARGE_RUN_INTERVAL:
            return
        self._shown_at = now
        show_task_grid(run_state, states(), task_order())
