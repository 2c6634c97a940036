import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.python import BranchPythonOperator
from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def conformance_branching():
    @task.branch
    def choose(ti=None) -> str:
        return "left"

    @task
    def left() -> str:
        return "went left"

    @task
    def right() -> str:
        return "went right"

    @task(trigger_rule="none_failed_min_one_success")
    def join() -> str:
        return "joined"

    chosen = choose()
    chosen >> [left(), right()] >> join()

    classic = BranchPythonOperator(task_id="classic_branch", python_callable=lambda: ["second", "third"])
    first = EmptyOperator(task_id="first")
    second = EmptyOperator(task_id="second")
    third = EmptyOperator(task_id="third")
    after_first = EmptyOperator(task_id="after_first")
    classic >> [first, second, third]
    first >> after_first


conformance_branching()
