"""The worker's Prometheus metrics.

Labels are bounded on purpose: dag_id, state, topic, and a callback's level and kind. A run_id
label would create one series per run and grow without end. The dag_ids are those of the dags
folder, plus, for runs finished, any unknown dag_id a trigger named: its run fails at once, as
costly as the series it adds.
"""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import Counter, Gauge, Histogram

# Task tries last from milliseconds (EmptyOperator) to hours (a long ETL step).
TASK_DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)

TASK_TRIES = Counter(
    "dagbridge_task_tries",
    "Task tries by the state they ended in; a try whose activity never returned counts when its event is out.",
    ["dag_id", "state"],
)
TASK_DURATION = Histogram(
    "dagbridge_task_duration_seconds",
    "Duration of task tries that produced a result, from start to end of the try.",
    ["dag_id"],
    buckets=TASK_DURATION_BUCKETS,
)
EVENTS_PUBLISHED = Counter(
    "dagbridge_events_published",
    "Task and run events acknowledged by Kafka.",
    ["topic"],
)
EVENTS_FAILED = Counter(
    "dagbridge_events_failed",
    "Attempts to publish a task or run event that Kafka did not acknowledge (the activity retries them).",
    ["topic"],
)
EVENTS_HELD_BACK = Gauge(
    "dagbridge_events_held_back",
    "Events of ended tries that Kafka (or Temporal, for asset events) has not taken yet: each holds its "
    "try open on this worker, retrying, so the run waits. By event: task, or asset (a try's asset events).",
    ["event"],
    multiprocess_mode="livesum",
)
DAG_RUNS_FINISHED = Counter(
    "dagbridge_dag_runs_finished",
    "DAG runs that ended, by final state (success or failed), counted when the run event is out.",
    ["dag_id", "state"],
)

CALLBACK_FAILURES = Counter(
    "dagbridge_callback_failures",
    "Airflow callbacks that raised, by level (task or dag) and kind (e.g. on_failure_callback); "
    "like Airflow, dagbridge logs them and keeps the outcome of the try or run.",
    ["dag_id", "level", "callback"],
)


def record_task_try(dag_id: str, state: str, duration: timedelta) -> None:
    TASK_TRIES.labels(dag_id, state).inc()
    TASK_DURATION.labels(dag_id).observe(max(duration.total_seconds(), 0.0))


def record_callback_failures(dag_id: str, level: str, callbacks: list[str]) -> None:
    for callback in callbacks:
        CALLBACK_FAILURES.labels(dag_id, level, callback).inc()


BUSY_TASK_PROCESSES = Gauge(
    "dagbridge_busy_task_processes",
    "Task processes of this worker running a task try now; a deferred task holds none while it waits.",
    # With several worker processes, /metrics shows the sum over the live ones.
    multiprocess_mode="livesum",
)
WAITING_TRIGGERS = Gauge(
    "dagbridge_waiting_triggers",
    "Triggers of deferred tasks this worker's triggerer runs now, waiting for their first event.",
    multiprocess_mode="livesum",
)
WORKFLOW_TASK_FAILURES = Counter(
    "dagbridge_workflow_task_failures",
    "Workflow tasks that failed on this worker, by the error's type (e.g. DeadlockError, or an exception "
    "raised in workflow code); Temporal retries them for ever and the run does not progress meanwhile.",
    ["error_type"],
)

TASK_LOGS = Counter(
    "dagbridge_task_logs",
    "Task-try logs by store (the logs base's scheme: file, s3, gs...) and outcome: stored (in the logs "
    "base), upload_failed (the object store refused it: it stays on the worker's disk, where the task event "
    "says), open_failed (the try's log file could not be opened: the try did not start, Temporal retries it).",
    ["store", "outcome"],
)
TASK_LOG_OUTCOMES = ("stored", "upload_failed", "open_failed")
TASK_LOG_BYTES = Counter(
    "dagbridge_task_log_bytes",
    "Bytes task tries wrote to their logs, by DAG: what the logs base grows by.",
    ["dag_id"],
)
