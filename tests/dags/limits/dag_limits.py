"""DAGs limited by their own settings: max_active_runs, max_active_tasks, max_active_tis_per_dag."""

import datetime
import time

from airflow.sdk import dag, task

START = datetime.datetime(2025, 1, 1)


@dag(schedule=None, start_date=START, catchup=False, max_active_runs=1)
def limits_one_run_at_a_time():
    @task
    def sleep() -> None:
        time.sleep(0.4)

    sleep()


@dag(schedule=None, start_date=START, catchup=False, max_active_tasks=1)
def limits_one_task_at_a_time():
    for name in ("a", "b", "c"):

        @task(task_id=f"sleep_{name}")
        def sleep() -> None:
            time.sleep(0.2)

        sleep()


@dag(schedule=None, start_date=START, catchup=False)
def limits_task_once_across_runs():
    @task(max_active_tis_per_dag=1)
    def exclusive() -> None:
        time.sleep(0.3)

    @task
    def free() -> None:
        time.sleep(0.3)

    exclusive()
    free()


limits_one_run_at_a_time()
limits_one_task_at_a_time()
limits_task_once_across_runs()
