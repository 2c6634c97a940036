"""Every ID dagbridge builds, and the one place that parses them back.

IDs are contracts: a workflow ID makes a repeated trigger a duplicate, an event ID lets consumers
dedupe, an activity ID names a try in Temporal's UI and in log lines. Build them only here.

A dag_id cannot contain ``:`` (Airflow's key rules); a run_id can, so parsers split a workflow ID
once after the prefix and never from the right.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import Enum

DAG_RUN_PREFIX = "dagrun:"
LIMIT_PREFIX = "limit:"
ASSET_SCHEDULE_PREFIX = "assets:"
ASSET_TRIGGERED_RUN_PREFIX = "asset_triggered__"
_RESCHEDULE_MARK = "reschedule-"


class LimitKind(str, Enum):
    POOL = "pool"
    TASK = "task"
    RUNS = "runs"


def dag_run_workflow_id(dag_id: str, run_id: str) -> str:
    """``dagrun:<dag_id>:<run_id>``: one workflow per DAG run, never reused."""
    return f"{DAG_RUN_PREFIX}{dag_id}:{run_id}"


def parse_dag_run_workflow_id(workflow_id: str) -> tuple[str, str] | None:
    """``(dag_id, run_id)`` of a DAG-run workflow ID, ``None`` for any other workflow."""
    if not workflow_id.startswith(DAG_RUN_PREFIX):
        return None
    dag_id, sep, run_id = workflow_id.removeprefix(DAG_RUN_PREFIX).partition(":")
    return (dag_id, run_id) if sep else None


def limit_workflow_id(kind: LimitKind, name: str) -> str:
    """``limit:<kind>:<name>``: the workflow that holds one pool's or limit's slots."""
    return f"{LIMIT_PREFIX}{kind.value}:{name}"


@dataclass(frozen=True)
class TryId:
    """One task try, and the poke within it for a reschedule-mode sensor (0 for the first)."""

    task_id: str
    map_index: int
    try_number: int
    reschedule_count: int = 0

    def activity_id(self) -> str:
        """``<task_id>:<map_index>:<try>[:reschedule-<n>]``: unique per poke within the run."""
        base = f"{self.task_id}:{self.map_index}:{self.try_number}"
        return f"{base}:{_RESCHEDULE_MARK}{self.reschedule_count}" if self.reschedule_count else base

    def qualified(self, workflow_id: str) -> str:
        """``<workflow_id>:<task_id>:<map_index>:<try>``: the try across all runs.

        The task event's ``event_id``, a slot holder's name, and what a TriggerDagRunOperator
        try records as the starter of the run it triggered. Pokes of one try share it.
        """
        return f"{workflow_id}:{self.task_id}:{self.map_index}:{self.try_number}"

    @classmethod
    def parse_activity_id(cls, activity_id: str) -> TryId | None:
        """The inverse of :meth:`activity_id`; ``None`` for an ID of another shape."""
        parts = activity_id.split(":")
        reschedule_count = 0
        if len(parts) >= 4 and parts[-1].startswith(_RESCHEDULE_MARK):
            count = parts.pop().removeprefix(_RESCHEDULE_MARK)
            if not count.isdigit():
                return None
            reschedule_count = int(count)
        if len(parts) != 3 or not _is_int(parts[1]) or not parts[2].isdigit():
            return None
        return cls(parts[0], int(parts[1]), int(parts[2]), reschedule_count)


def task_event_id(workflow_id: str, task_id: str, map_index: int, try_number: int) -> str:
    return TryId(task_id, map_index, try_number).qualified(workflow_id)


def run_event_id(workflow_id: str) -> str:
    return f"{workflow_id}:finished"


def asset_event_id(
    workflow_id: str, task_id: str, map_index: int, try_number: int, asset_uri: str, *, n: int = 0
) -> str:
    """``<workflow_id>:<task_id>:<map_index>:<try_number>:<asset uri>``: one asset event of one try.

    A try that emits several events for the same asset (several partition keys, or the asset
    directly and through an alias) numbers the later ones ``#1``, ``#2``... in emission order.
    """
    base = f"{TryId(task_id, map_index, try_number).qualified(workflow_id)}:{asset_uri}"
    return f"{base}#{n}" if n else base


def asset_schedule_workflow_id(dag_id: str) -> str:
    """``assets:<dag_id>``: the long-lived workflow that holds an asset-scheduled DAG's queued events."""
    return f"{ASSET_SCHEDULE_PREFIX}{dag_id}"


def asset_triggered_run_id(run_after_iso: str, event_ids: list[str]) -> str:
    """``asset_triggered__<run_after>_<digest>``: Airflow's prefix and run_after, plus a digest of the
    consumed events' IDs, so the same events always name the same run and different ones never do."""
    digest = hashlib.sha256("\n".join(sorted(event_ids)).encode()).hexdigest()[:12]
    return f"{ASSET_TRIGGERED_RUN_PREFIX}{run_after_iso}_{digest}"


def event_key(dag_id: str, run_id: str) -> bytes:
    """Kafka key of every event of a run: one partition per run keeps its events in order."""
    return f"{dag_id}:{run_id}".encode()


def _is_int(text: str) -> bool:
    return text.removeprefix("-").isdigit()
