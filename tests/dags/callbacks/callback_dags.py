"""DAGs whose callbacks write down what they received, one JSON line per call.

The lines go to ``$TEST_CALLBACK_RECORDS/<dag_id>.<run_id>.jsonl``: a DAG callback
may get no ``dag_run`` (and so no conf) in its context, but always the run_id.
"""

import datetime
import json
import os
import time
from pathlib import Path

from airflow.sdk import dag, task


def record(name):
    def callback(context):
        ti = context.get("ti")
        exception = context.get("exception")
        line = {
            "callback": name,
            "run_id": context["run_id"],
            "dag_run_id": context["dag_run"].run_id if "dag_run" in context else None,
            "reason": context.get("reason"),
            "task_id": ti.task_id if ti else None,
            "map_index": ti.map_index if ti else None,
            "try_number": ti.try_number if ti else None,
            "exception": type(exception).__name__ if exception else None,
        }
        path = Path(os.environ["TEST_CALLBACK_RECORDS"]) / f"{context['dag'].dag_id}.{context['run_id']}.jsonl"
        with path.open("a") as records:
            records.write(json.dumps(line) + "\n")

    return callback


def explode(context):
    raise RuntimeError("this callback is broken")


TASK_CALLBACKS = {
    "on_execute_callback": record("task.on_execute"),
    "on_success_callback": record("task.on_success"),
    "on_retry_callback": record("task.on_retry"),
    "on_failure_callback": record("task.on_failure"),
}
DAG_CALLBACKS = {"on_success_callback": record("dag.on_success"), "on_failure_callback": record("dag.on_failure")}


@dag(
    schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False, default_args=TASK_CALLBACKS, **DAG_CALLBACKS
)
def callbacks_success():
    @task
    def numbers() -> list[int]:
        return [1, 2]

    @task
    def double(value: int) -> int:
        return value * 2

    @task
    def total(values) -> int:
        return sum(values)

    total(double.expand(value=numbers()))


@dag(
    schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False, default_args=TASK_CALLBACKS, **DAG_CALLBACKS
)
def callbacks_retry_then_fail():
    @task(retries=1, retry_delay=datetime.timedelta(seconds=0))
    def flaky() -> None:
        raise ValueError("always")

    @task
    def never_runs() -> None:
        pass

    flaky() >> never_runs()


@dag(
    schedule=None,
    start_date=datetime.datetime(2025, 1, 1),
    catchup=False,
    on_success_callback=[explode, record("dag.on_success")],
)
def callbacks_raising():
    @task(on_success_callback=[explode, record("task.on_success")])
    def steady() -> str:
        return "kept"

    steady()


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False, **DAG_CALLBACKS)
def callbacks_lost_worker():
    # Outlives the activity's start-to-close timeout the test sets: the try never reports.
    @task(
        retries=1,
        retry_delay=datetime.timedelta(seconds=0),
        on_retry_callback=record("task.on_retry"),
        on_failure_callback=record("task.on_failure"),
    )
    def unresponsive() -> None:
        time.sleep(3)

    unresponsive()


callbacks_success()
callbacks_retry_then_fail()
callbacks_raising()
callbacks_lost_worker()
