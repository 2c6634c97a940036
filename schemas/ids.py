"""Every ID dagbridge builds, and the one place that parses them back.

IDs are contracts: a workflow ID makes a repeated trigger a duplicate, an event ID lets consumers
dedupe, an activity ID names a try in Temporal's UI and in log lines. Build them only here.

A dag_id cannot contain ``:`` (Airflow's key rules); a run_id can, so parsers split a workflow ID
once after the prefix and never from the right.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from urllib.parse import quote

DAG_RUN_PREFIX = "dagrun:"
LIMIT_PREFIX = "limit:"
ASSET_SCHEDULE_PREFIX = "assets:"
ASSET_TRIGGERED_RUN_PREFIX = "asset_triggered__"
_RESCHEDULE_MARK = "reschedule-"
_RESUME_MARK = "resume-"
_TRIGGER_MARK = "trigger"
TRIGGERS_QUEUE_SUFFIX = "-triggers"


class LimitKind(StrEnum):
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


def limit_kind(limit_id: str) -> LimitKind | None:
    """The kind of limit a ``limit:<kind>:<name>`` ID names, ``None`` for any other ID."""
    kind, sep, _ = limit_id.removeprefix(LIMIT_PREFIX).partition(":")
    if not limit_id.startswith(LIMIT_PREFIX) or not sep or kind not in LimitKind.__members__.values():
        return None
    return LimitKind(kind)


@dataclass(frozen=True)
class TryId:
    """One task try, and the run within it: a reschedule-mode sensor's poke (0 for the first), the
    resumption after a deferral (0 for the first run of the try)."""

    task_id: str
    map_index: int
    try_number: int
    reschedule_count: int = 0
    resume_count: int = 0

    def activity_id(self) -> str:
        """``<task_id>:<map_index>:<try>[:reschedule-<n>][:resume-<m>]``: unique per run of a try within the run."""
        base = f"{self.task_id}:{self.map_index}:{self.try_number}"
        if self.reschedule_count:
            base = f"{base}:{_RESCHEDULE_MARK}{self.reschedule_count}"
        return f"{base}:{_RESUME_MARK}{self.resume_count}" if self.resume_count else base

    def trigger_activity_id(self) -> str:
        """``<task_id>:<map_index>:<try>:trigger-<m>``: the trigger of the try's deferral number ``m`` (from 0)."""
        return f"{self.task_id}:{self.map_index}:{self.try_number}:{_TRIGGER_MARK}-{self.resume_count}"

    def qualified(self, workflow_id: str) -> str:
        """``<workflow_id>:<task_id>:<map_index>:<try>``: the try across all runs.

        The task event's ``event_id``, a slot holder's name, and what a TriggerDagRunOperator
        try records as the starter of the run it triggered. Pokes and resumptions of one try share it.
        """
        return f"{workflow_id}:{self.task_id}:{self.map_index}:{self.try_number}"

    @classmethod
    def parse_activity_id(cls, activity_id: str) -> TryId | None:
        """The inverse of :meth:`activity_id`; ``None`` for an ID of another shape."""
        parts = activity_id.split(":")
        counts = {_RESCHEDULE_MARK: 0, _RESUME_MARK: 0}
        for mark in (_RESUME_MARK, _RESCHEDULE_MARK):
            if len(parts) >= 4 and parts[-1].startswith(mark):
                count = parts.pop().removeprefix(mark)
                if not count.isdigit():
                    return None
                counts[mark] = int(count)
        if len(parts) != 3 or not _is_int(parts[1]) or not parts[2].isdigit():
            return None
        return cls(parts[0], int(parts[1]), int(parts[2]), counts[_RESCHEDULE_MARK], counts[_RESUME_MARK])


def triggers_task_queue(task_queue: str) -> str:
    """``<task_queue>-triggers``: where the triggers of tasks on ``task_queue`` run, on the same workers."""
    return f"{task_queue}{TRIGGERS_QUEUE_SUFFIX}"


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


def asset_watcher_run_id(topic: str, partition: int, offset: int) -> str:
    """``asset_triggered__<topic>-<partition>-<offset>``: the run one AssetWatcher message starts.

    Keyed by the record's position, so a redelivered message names the same run and starts none.
    """
    return f"{ASSET_TRIGGERED_RUN_PREFIX}{topic}-{partition}-{offset}"


def asset_watcher_event_id(topic: str, partition: int, offset: int, asset_uri: str) -> str:
    """``kafka:<topic>:<partition>:<offset>:<asset uri>``: the asset event one watcher message makes."""
    return f"kafka:{topic}:{partition}:{offset}:{asset_uri}"


def event_key(dag_id: str, run_id: str) -> bytes:
    """Kafka key of every event of a run: one partition per run keeps its events in order."""
    return f"{dag_id}:{run_id}".encode()


# Characters a log path component keeps as they are: Airflow's run_id alphabet. Everything else
# ("/", "\\", "%", NUL, non-ASCII...) is percent-encoded, so no ID can leave its own folder.
_LOG_PATH_SAFE = "_.~:+-"
# Most file systems (and S3 console paths) cap one name at 255 bytes.
_MAX_NAME_BYTES = 255


def _log_path_component(key: str, value: str) -> str:
    """``<key>=<value>`` as one safe path name.

    The ``key=`` prefix means no value can make the name ``.`` or ``..``; a name too long once
    encoded keeps its start and gets a digest of the whole value, so it stays unique.
    """
    name = f"{key}={quote(value, safe=_LOG_PATH_SAFE)}"
    if len(name) > _MAX_NAME_BYTES:
        digest = hashlib.sha256(value.encode()).hexdigest()[:16]
        name = f"{name[: _MAX_NAME_BYTES - len(digest) - 1]}~{digest}"
    return name


def task_log_path(dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> str:
    """Where a try's log lives below the logs base, in Airflow's layout.

    ``dag_id=<dag>/run_id=<run>/task_id=<task>/[map_index=<i>/]attempt=<n>.log``; pokes of a
    reschedule-mode sensor share their try's file.
    """
    return "/".join(
        [
            *task_log_folder(dag_id, run_id, task_id, map_index),
            f"attempt={try_number}.log",
        ]
    )


def task_log_folder(dag_id: str, run_id: str, task_id: str, map_index: int) -> list[str]:
    """The path components of the folder holding every attempt of one task instance's log."""
    parts = [
        _log_path_component("dag_id", dag_id),
        _log_path_component("run_id", run_id),
        _log_path_component("task_id", task_id),
    ]
    if map_index >= 0:
        parts.append(f"map_index={map_index}")
    return parts


def parse_task_log_attempt(name: str) -> int | None:
    """The try number of an ``attempt=<n>.log`` file name, ``None`` for any other name."""
    number = name.removeprefix("attempt=").removesuffix(".log")
    return int(number) if name.startswith("attempt=") and name.endswith(".log") and number.isdigit() else None


def _is_int(text: str) -> bool:
    return text.removeprefix("-").isdigit()


SCHEDULE_PREFIX = "schedule:"
BACKFILL_PREFIX = "backfill:"


def schedule_workflow_id(dag_id: str) -> str:
    """``schedule:<dag_id>``: the one workflow that starts a DAG's scheduled runs."""
    return f"{SCHEDULE_PREFIX}{dag_id}"


def backfill_workflow_id(dag_id: str, from_date: datetime, to_date: datetime) -> str:
    """``backfill:<dag_id>:<from ISO>:<to ISO>``: one backfill of one range at a time."""
    return f"{BACKFILL_PREFIX}{dag_id}:{from_date.isoformat()}:{to_date.isoformat()}"
