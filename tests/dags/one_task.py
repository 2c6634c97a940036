import datetime

from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def one_task():
    """The burst tests' DAG: one task try through the task runner, Airflow's default max_active_runs (16)."""

    @task
    def only() -> int:
        return 1

    only()


one_task()
