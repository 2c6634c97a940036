import datetime

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def conformance_expand_kwargs():
    @task
    def jobs() -> list[dict]:
        return [{"a": 1, "b": 2}, {"a": 3, "b": 4}, {"a": 5, "b": 6}]

    @task
    def add(a: int, b: int, offset: int) -> int:
        return a + b + offset

    @task
    def total(values) -> int:
        return sum(values)

    total(add.partial(offset=100).expand_kwargs(jobs()))
    BashOperator.partial(task_id="echo").expand_kwargs(
        [{"bash_command": "echo one"}, {"bash_command": "echo two", "env": {"X": "1"}}]
    )


conformance_expand_kwargs()
