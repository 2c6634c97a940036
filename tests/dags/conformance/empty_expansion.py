import datetime

from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def conformance_empty_expansion():
    @task
    def nothing() -> list[int]:
        return []

    @task
    def square(value: int) -> int:
        return value * value

    @task
    def total(values) -> int:
        return sum(values)

    @task(trigger_rule="all_done")
    def finally_() -> str:
        return "done"

    squared = square.expand(value=nothing())
    total(squared) >> finally_()


conformance_empty_expansion()
