"""Extract a few numbers, scale them by a factor from the run's conf, load the total, report it."""

from __future__ import annotations

import datetime

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import Param, dag, task


@dag(
    schedule=None,
    start_date=datetime.datetime(2025, 1, 1),
    catchup=False,
    params={"factor": Param(2, type="integer", minimum=1)},
    tags=["example"],
)
def example_etl():
    @task
    def extract() -> list[int]:
        return [1, 2, 3, 4]

    @task
    def transform(numbers: list[int], params=None) -> list[int]:
        return [n * params["factor"] for n in numbers]

    @task
    def load(numbers: list[int]) -> int:
        return sum(numbers)

    report = BashOperator(
        task_id="report",
        bash_command="echo 'total {{ ti.xcom_pull(task_ids=\"load\") }} on {{ ds }} with factor {{ params.factor }}'",
    )
    load(transform(extract())) >> report


example_etl()
