"""Error types that cross a process boundary: Temporal failure types, task and run errors.

A workflow decides on these names (which failures Temporal must not retry, what a run event
reports), so they are spelled once.
"""

from __future__ import annotations

from enum import StrEnum


class FailureType(StrEnum):
    DAG_NOT_FOUND = "DagNotFound"
    """The worker's dags folder has no DAG of that id: the run fails at once, never retried."""
    TASK_NOT_FOUND = "TaskNotFound"
    """The DAG the worker loaded has no such task (the file changed under a running run)."""
    INVALID_DAG_RUN = "InvalidDagRun"
    """Airflow refused to create the run, for example a conf that fails the DAG's params."""
    POOL_UNAVAILABLE = "PoolUnavailable"
    """The task names a pool that is not declared in ``DAGBRIDGE_POOLS``."""


NON_RETRYABLE_TRY_ERRORS = [FailureType.DAG_NOT_FOUND.value, FailureType.TASK_NOT_FOUND.value]


class ScheduleFailure(StrEnum):
    INVALID_BACKFILL = "InvalidBackfill"
    """Airflow refused the backfill (dates, direction, reprocessing): nothing was started."""
